"""/api/v1/predictions: real-time predictions served in process.

A request gives ``features`` (one row), ``instances`` (rows), ``entity`` (one entity's join keys)
or ``entities``; by entity, the features come from the online store through the feature service
the model version was trained from, and the response also carries ``entity``/``entities`` and
``feature_service``, and ``features`` (the values the model was given) and explanations only for
a token that also holds ``features:read`` (the stored values are feature data). The prediction-log record
keeps its schema: ``features`` holds the model's input rows whichever way they came, and by
entity ``outputs`` also holds ``entity``/``entities`` and ``feature_service``.

Every row beyond the first is charged to the tenant's rate limit; a response of more than the
offload threshold's rows is serialised in a worker thread.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response

from serving_api.deps import PredictionsWriter, PredictionServiceDep
from serving_api.errors import request_id_of
from serving_api.schemas.predictions import PredictionRequest, PredictionResponse

router = APIRouter(prefix="/api/v1/predictions", tags=["predictions"])


def _json(fields: dict) -> Response:
    return Response(PredictionResponse(**fields).model_dump_json(), media_type="application/json")


@router.post("", response_model=PredictionResponse)
async def predict(body: PredictionRequest, request: Request, principal: PredictionsWriter, service: PredictionServiceDep):
    started = time.perf_counter()
    single = body.single
    n_rows = body.row_count
    service.charge_rows(principal.tenant_id, n_rows)
    # By entity, contributions (e.g. coef * (x - mean)) would reveal the stored values: only with features:read.
    reveals = body.by_entity and not principal.has_scope("features:read")
    explain = body.options.return_explanation and not reveals
    if body.by_entity:
        # the store is read here rather than as a dependency: the 'features' hot path pays nothing for it
        outcome = await service.predict_entities(principal.tenant_id, body.model_id, body.version, body.entity_rows(),
                                                 feature_store=request.app.state.feature_store, explain=explain)
    else:
        outcome = await service.predict_rows(principal.tenant_id, body.model_id, body.version, body.rows(), explain=explain)
    explanation = await service.explain(outcome) if explain else None
    if body.options.return_explanation and reveals:
        explanation = [{"method": "unavailable", "reason": "explanations of predictions by entity need the features:read "
                        "scope (they would reveal the stored feature values)"}] * n_rows
    response = {
        "prediction": outcome.prediction,
        "probabilities": outcome.probabilities if body.options.return_probabilities else None,
        "confidence": (outcome.confidence[0] if single else outcome.confidence) if outcome.confidence else None,
        "explanation": (explanation[0] if single else explanation) if explanation is not None else None,
    }
    outputs = {k: v for k, v in response.items() if k != "explanation"}
    if outcome.entities is not None:
        asked = {"entity": outcome.entities[0]} if single else {"entities": outcome.entities}
        outputs.update(asked, feature_service=outcome.feature_service)
        response.update(asked, feature_service=outcome.feature_service)
        if principal.has_scope("features:read"):  # stored feature values are feature data
            response["features"] = outcome.rows[0] if single else outcome.rows
    version = outcome.served.model.version
    latency_ms, request_id = await service.log_prediction(
        request_id=request_id_of(request), tenant_id=principal.tenant_id, subject=principal.subject,
        model_id=body.model_id, version=version, rows=outcome.rows, outputs=outputs, started=started,
    )
    fields = dict(request_id=request_id, model_id=body.model_id, version=version, latency_ms=latency_ms, **response)
    if n_rows <= service.offload_rows:
        return PredictionResponse(**fields)
    return await service.offload(n_rows, _json, fields)
