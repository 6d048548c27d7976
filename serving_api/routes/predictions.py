"""/api/v1/predictions: real-time predictions served in process.

A request gives ``features`` (one row), ``instances`` (rows), ``entity`` (one entity's join keys)
or ``entities``; by entity, the features come from the online store through the feature service
the model version was trained from, and the response also carries ``entity``/``entities``,
``feature_service`` and ``features`` (the values the model was given). The prediction-log record
keeps its schema: ``features`` holds the model's input rows whichever way they came, and by
entity ``outputs`` also holds ``entity``/``entities`` and ``feature_service``.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request

from serving_api.deps import PredictionsWriter, PredictionServiceDep
from serving_api.errors import request_id_of
from serving_api.schemas.predictions import PredictionRequest, PredictionResponse

router = APIRouter(prefix="/api/v1/predictions", tags=["predictions"])


@router.post("", response_model=PredictionResponse)
async def predict(body: PredictionRequest, request: Request, principal: PredictionsWriter, service: PredictionServiceDep) -> PredictionResponse:
    started = time.perf_counter()
    single = body.single
    if body.by_entity:
        # the store is read here rather than as a dependency: the 'features' hot path pays nothing for it
        outcome = await service.predict_entities(principal.tenant_id, body.model_id, body.version, body.entity_rows(),
                                                 feature_store=request.app.state.feature_store)
    else:
        outcome = await service.predict_rows(principal.tenant_id, body.model_id, body.version, body.rows())
    explanation = await service.explain(outcome) if body.options.return_explanation else None
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
        response.update(asked, feature_service=outcome.feature_service,
                        features=outcome.rows[0] if single else outcome.rows)
    version = outcome.served.model.version
    latency_ms, request_id = await service.log_prediction(
        request_id=request_id_of(request), tenant_id=principal.tenant_id, subject=principal.subject,
        model_id=body.model_id, version=version, rows=outcome.rows, outputs=outputs, started=started,
    )
    return PredictionResponse(request_id=request_id, model_id=body.model_id, version=version,
                              latency_ms=latency_ms, **response)
