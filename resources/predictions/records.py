"""The prediction-log record of an answered prediction: one format for every route (the API's
and Ray Serve replicas').

``features`` holds the model's input rows, whichever way they came (features, instances, the
online store's values by entity, OIP tensors); ``outputs`` is always

    {"prediction": [per row], "probabilities": [[per class] per row] | null,
     "confidence": [per row] | null, "entities": [join keys per row] | null,
     "feature_service": name | null, "members": [per ensemble member] | null}

whatever the client asked to see (probabilities are recorded even when the response left them
out). An ensemble's record has ``model_id`` = the ensemble id, ``model_version`` "ensemble" and
``ensemble_id`` set. The record is committed before the response is sent.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from resources.predictions.log import PredictionLog


@dataclass
class Answer:
    """What one request was answered, as the log records it."""

    model_id: str
    version: str
    rows: list[dict[str, Any]]
    prediction: list[Any]
    probabilities: list[list[float]] | None
    confidence: list[float] | None
    entities: list[dict[str, Any]] | None = None
    feature_service: str | None = None
    members: list[dict[str, Any]] | None = None
    ensemble_id: str | None = None

    def outputs(self) -> dict[str, Any]:
        return {"prediction": self.prediction, "probabilities": self.probabilities, "confidence": self.confidence,
                "entities": self.entities, "feature_service": self.feature_service, "members": self.members}


class PredictionRecorder:
    def __init__(self, log: PredictionLog) -> None:
        self.log = log

    async def record(self, answer: Answer, *, request_id: str, tenant_id: str, subject: str | None,
                     started: float) -> tuple[float, str]:
        """Write the durable record; returns (latency_ms, the request id the record carries).

        Records are keyed by (tenant, request id), so another tenant's use of an id is never seen.
        A tenant that sends the same X-Request-ID twice gets a unique suffix on the second record
        (and that response's body), cut to fit the 128-character column; the id as sent is kept
        in ``client_request_id``. Every 200 still has exactly one record.
        """
        import sqlalchemy as sa

        latency_ms = round((time.perf_counter() - started) * 1000, 3)
        fields = dict(tenant_id=tenant_id, subject=subject, model_id=answer.model_id, model_version=answer.version,
                      ensemble_id=answer.ensemble_id, latency_ms=latency_ms, features=answer.rows,
                      outputs=answer.outputs(), client_request_id=request_id)
        logged_id = request_id
        for attempt in range(3):  # a suffix that clashes too (odds 2**-32) takes another
            try:
                await self.log.record(request_id=logged_id, **fields)
                break
            except sa.exc.IntegrityError:
                if attempt == 2:
                    raise
                logged_id = f"{request_id[:128 - 9]}~{uuid.uuid4().hex[:8]}"
        return latency_ms, logged_id
