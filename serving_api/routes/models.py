"""/api/v1/models: the tenant's models on the MLflow registry."""

from __future__ import annotations

import asyncio

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Query, Request

from serving_api.deps import ModelsReader, ModelsWriter, RegistryDep
from serving_api.schemas.models import (
    Framework,
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

router = APIRouter(prefix="/api/v1/models", tags=["models"])


def _public(record) -> ModelPublic:
    return ModelPublic.model_validate(asdict(record))


@router.post("", status_code=201, response_model=ModelPublic)
async def create_model(body: ModelCreate, principal: ModelsWriter, registry: RegistryDep, request: Request) -> ModelPublic:
    record = await asyncio.to_thread(
        registry.create_model,
        principal.tenant_id,
        name=body.name,
        description=body.description,
        model_type=body.model_type,
        framework=body.framework,
        tags=body.tags,
        source_uri=body.source.uri() if body.source else None,
        actor=principal.subject,
    )
    request.app.state.model_cache.invalidate(principal.tenant_id, record.model_id)  # "unknown" answers cached meanwhile
    return _public(record)


@router.get("", response_model=ModelsPublic)
def list_models(
    principal: ModelsReader,
    registry: RegistryDep,
    stage: Stage | None = None,
    framework: Framework | None = None,
    model_type: ModelType | None = None,
    name_prefix: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
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
async def register_version(
    model_id: str, body: VersionCreate, principal: ModelsWriter, registry: RegistryDep, request: Request,
) -> VersionPublic:
    version = await asyncio.to_thread(
        registry.register_version, principal.tenant_id, model_id, model_uri=body.source.uri(), actor=principal.subject,
        version=body.version, bump=body.bump, description=body.description,
    )
    request.app.state.model_cache.invalidate(principal.tenant_id, model_id)  # "unknown version" answers cached meanwhile
    return VersionPublic.model_validate(asdict(version))


@router.put("/{model_id}/stage", response_model=StageChangePublic)
async def change_stage(
    model_id: str, body: StageChange, principal: ModelsWriter, registry: RegistryDep, request: Request
) -> StageChangePublic:
    result = await asyncio.to_thread(
        registry.transition_stage, principal.tenant_id, model_id, version=body.version,
        target_stage=body.target_stage, actor=principal.subject,
    )
    cache = request.app.state.model_cache
    cache.invalidate(principal.tenant_id, model_id)  # "production" now means another version
    if body.target_stage == "production":  # the first prediction should not pay for the load
        cache.warm_in_background(principal.tenant_id, model_id, "production")
    return StageChangePublic.model_validate(asdict(result))
