"""What a model version takes and answers, without loading it (OIP metadata and ready).

A ``models:read`` caller must never make the API load a model (loading is the expensive,
risky step): the facts come from the loaded model when it is in the cache, else from what
registration recorded about the artifact (``resources.models.artifact_records``: the signature's inputs
and the classes). A version without a record was not registered through the platform and is
never loaded: its facts are refused the way its load would be (503 MODEL_NOT_VERIFIED).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from mlservice.inference.signature import FeatureSpec
from resources.errors import ModelNotVerified
from serving_api.online.cache import ModelCache


@dataclass
class ModelFacts:
    model_id: str
    name: str
    version: str
    model_type: str
    framework: str
    features: list[FeatureSpec]
    classes: list[Any]
    loaded: bool


async def model_facts(cache: ModelCache, tenant_id: str, name: str, version: str | None, *, need_io: bool = True) -> ModelFacts:
    """Facts of the tenant's model ``name`` at ``version`` (a semantic version or a stage).

    With ``need_io=False`` (ready) only the resolution and whether it is loaded are looked up."""
    model_id, model_name = await cache.model_id_for_name(tenant_id, name)
    resolved = await cache.resolve(tenant_id, model_id, version)
    served = cache.peek(tenant_id, model_id, resolved.version)
    facts = ModelFacts(model_id, model_name, resolved.version, resolved.model_type, resolved.framework, [], [], served is not None)
    if served is not None:
        facts.features, facts.classes = list(served.model.features), list(served.model.classes or [])
    elif need_io:
        record = await asyncio.to_thread(cache.registry.artifacts.get, resolved.mlflow_name, resolved.mlflow_version)
        if record is None or (record.tenant_id, record.model_id) != (tenant_id, model_id):
            raise ModelNotVerified(
                f"version {resolved.version} has no record of its artifact (it was not registered through the platform)",
                {"model_id": model_id, "version": resolved.version},
            )
        facts.features = [FeatureSpec(name=f["name"], type=f["type"]) for f in record.features]
        facts.classes = list(record.classes or [])
    return facts
