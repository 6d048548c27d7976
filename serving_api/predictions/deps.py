"""Dependencies of online predictions and the OIP routes: ``PredictionServiceDep``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from serving_api.predictions.service import PredictionService


async def get_prediction_service(request: Request) -> PredictionService:
    return request.app.state.prediction_service


PredictionServiceDep = Annotated[PredictionService, Depends(get_prediction_service)]
