"""/api/v1/predictions: real-time predictions served in process.

A request gives ``features`` (one row), ``instances`` (rows), ``entity`` (one entity's join keys)
or ``entities``; by entity, the features come from the online store through the feature service
the model version was trained from, and the response also carries ``entity``/``entities`` and
``feature_service``, and ``features`` (the values the model was given) and explanations only for
a token that also holds ``features:read`` (the stored values are feature data). Every answer has
one prediction-log record (``serving_api/predictions/outcome.py``). The work is
``PredictionService.answer``.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from serving_api.deps import PredictionsWriter
from serving_api.errors import request_id_of
from serving_api.openapi import errors
from serving_api.predictions.deps import PredictionServiceDep
from serving_api.predictions.schemas import PredictionRequest, PredictionResponse

router = APIRouter(prefix="/api/v1/predictions", tags=["predictions"], responses=errors(404, 422, 503))


@router.post("", response_model=PredictionResponse)
async def predict(body: PredictionRequest, request: Request, principal: PredictionsWriter, service: PredictionServiceDep):
    request.state.model_id = body.model_id  # a refusal's audit record names the model (monitoring counts it)
    return await service.answer(body, principal, request_id_of(request))
