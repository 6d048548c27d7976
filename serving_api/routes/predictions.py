"""/api/v1/predictions: real-time predictions served in process."""

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
    rows = body.rows()
    single = body.features is not None
    outcome = await service.predict_rows(principal.tenant_id, body.model_id, body.version, rows)
    explanation = await service.explain(outcome) if body.options.return_explanation else None
    response = {
        "prediction": outcome.prediction,
        "probabilities": outcome.probabilities if body.options.return_probabilities else None,
        "confidence": (outcome.confidence[0] if single else outcome.confidence) if outcome.confidence else None,
        "explanation": (explanation[0] if single else explanation) if explanation is not None else None,
    }
    version = outcome.served.model.version
    latency_ms, request_id = await service.log_prediction(
        request_id=request_id_of(request), tenant_id=principal.tenant_id, subject=principal.subject,
        model_id=body.model_id, version=version,
        rows=rows, outputs={k: v for k, v in response.items() if k != "explanation"}, started=started,
    )
    return PredictionResponse(request_id=request_id, model_id=body.model_id, version=version,
                              latency_ms=latency_ms, **response)
