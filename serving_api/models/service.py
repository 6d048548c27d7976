"""Writes of the models API: the registry's, with the model cache kept in step.

A model or version created through this API clears the cache's "unknown" answers for it at once;
a stage change drops the model's resolutions ("production" now means another version) and a
promotion loads the new production version in the background, so the first prediction does not
pay for the load. Registry calls block (MLflow): they run in a worker thread.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from serving_api.auth import Principal
from serving_api.models.schemas import ModelCreate, StageChange, VersionCreate

if TYPE_CHECKING:
    from resources.models.registry import ModelRecord, ModelRegistry, TransitionResult, VersionRecord
    from serving_api.online.cache import ModelCache


class ModelService:
    def __init__(self, registry: ModelRegistry, cache: ModelCache) -> None:
        self.registry, self.cache = registry, cache

    async def create(self, principal: Principal, body: ModelCreate) -> ModelRecord:
        record = await asyncio.to_thread(
            self.registry.create_model, principal.tenant_id, name=body.name, description=body.description,
            model_type=body.model_type, framework=body.framework, tags=body.tags,
            source_uri=body.source.uri() if body.source else None, actor=principal.subject,
        )
        self.cache.invalidate(principal.tenant_id, record.model_id)
        return record

    async def register_version(self, principal: Principal, model_id: str, body: VersionCreate) -> VersionRecord:
        version = await asyncio.to_thread(
            self.registry.register_version, principal.tenant_id, model_id, model_uri=body.source.uri(),
            actor=principal.subject, version=body.version, bump=body.bump, description=body.description,
        )
        self.cache.invalidate(principal.tenant_id, model_id)
        return version

    async def change_stage(self, principal: Principal, model_id: str, body: StageChange) -> TransitionResult:
        result = await asyncio.to_thread(
            self.registry.transition_stage, principal.tenant_id, model_id, version=body.version,
            target_stage=body.target_stage, actor=principal.subject, via=body.via,
        )
        self.cache.invalidate(principal.tenant_id, model_id)
        if body.target_stage == "production":
            self.cache.warm_in_background(principal.tenant_id, model_id, "production")
        return result
