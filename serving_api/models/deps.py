"""Dependencies of the models API: ``RegistryDep``, ``ModelServiceDep``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from resources.models.registry import ModelRegistry
from serving_api.models.service import ModelService


async def get_registry(request: Request) -> ModelRegistry:
    return request.app.state.registry


async def get_model_service(request: Request) -> ModelService:
    return request.app.state.model_service


RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
ModelServiceDep = Annotated[ModelService, Depends(get_model_service)]
