"""/api/v1/models: the tenant's models on the MLflow registry."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Query

from serving_api.deps import ModelsReader, ModelsWriter
from serving_api.models.deps import ModelServiceDep, RegistryDep
from serving_api.models.schemas import (
    FrameworkName,
    ModelCreate,
    ModelPublic,
    ModelsPublic,
    ModelType,
    Stage,
    StageChange,
    StageChangePublic,
    VersionCreate,
    VersionPublic,
    VersionsPublic,
)
from serving_api.openapi import errors

router = APIRouter(prefix="/api/v1/models", tags=["models"], responses=errors(404, 409, 503))


def _public(record) -> ModelPublic:
    return ModelPublic.model_validate(asdict(record))


@router.post("", status_code=201, response_model=ModelPublic)
async def create_model(body: ModelCreate, principal: ModelsWriter, service: ModelServiceDep) -> ModelPublic:
    return _public(await service.create(principal, body))


@router.get("", response_model=ModelsPublic)
def list_models(
    principal: ModelsReader,
    registry: RegistryDep,
    stage: Stage | None = None,
    framework: FrameworkName | None = None,
    model_type: ModelType | None = None,
    name_prefix: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(min_length=1, max_length=2048)] = None,
) -> ModelsPublic:
    records, next_cursor = registry.list_models(
        principal.tenant_id, stage=stage, framework=framework, model_type=model_type,
        name_prefix=name_prefix, limit=limit, cursor=cursor,
    )
    return ModelsPublic(data=[_public(r) for r in records], count=len(records), next_cursor=next_cursor)


@router.get("/{model_id}", response_model=ModelPublic)
def get_model(model_id: str, principal: ModelsReader, registry: RegistryDep) -> ModelPublic:
    return _public(registry.get_model(principal.tenant_id, model_id))


@router.get("/{model_id}/versions", response_model=VersionsPublic)
def list_versions(model_id: str, principal: ModelsReader, registry: RegistryDep) -> VersionsPublic:
    versions = registry.list_versions(principal.tenant_id, model_id)
    data = [VersionPublic.model_validate(asdict(v)) for v in versions]
    return VersionsPublic(model_id=model_id, data=data, count=len(data))


@router.post("/{model_id}/versions", status_code=201, response_model=VersionPublic)
async def register_version(model_id: str, body: VersionCreate, principal: ModelsWriter, service: ModelServiceDep) -> VersionPublic:
    return VersionPublic.model_validate(asdict(await service.register_version(principal, model_id, body)))


@router.put("/{model_id}/stage", response_model=StageChangePublic)
async def change_stage(model_id: str, body: StageChange, principal: ModelsWriter, service: ModelServiceDep) -> StageChangePublic:
    return StageChangePublic.model_validate(asdict(await service.change_stage(principal, model_id, body)))
