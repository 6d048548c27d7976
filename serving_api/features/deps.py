"""Dependencies of the feature store routes: ``FeatureStoreDep``, ``FeatureDefinitionsDep``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from resources.features.store import FeatureStoreResource
from serving_api.features.definitions import FeatureDefinitionService


async def get_feature_store(request: Request) -> FeatureStoreResource:
    return request.app.state.feature_store


async def get_feature_definitions(request: Request) -> FeatureDefinitionService:
    return request.app.state.feature_definitions


FeatureStoreDep = Annotated[FeatureStoreResource, Depends(get_feature_store)]
FeatureDefinitionsDep = Annotated[FeatureDefinitionService, Depends(get_feature_definitions)]
