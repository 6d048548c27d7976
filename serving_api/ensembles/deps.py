"""Dependencies of the ensembles API: ``EnsembleServiceDep``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from serving_api.ensembles.service import EnsembleService


async def get_ensemble_service(request: Request) -> EnsembleService:
    return request.app.state.ensemble_service


EnsembleServiceDep = Annotated[EnsembleService, Depends(get_ensemble_service)]
