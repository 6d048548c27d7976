"""Request and response bodies of the feature store routes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, model_validator

from serving_api.common_schemas import StrictModel

MAX_ENTITY_ROWS = 500
MAX_FEATURE_REFS = 200
ViewName = str


class OnlineFeaturesRequest(StrictModel):
    feature_refs: list[str] | None = Field(
        default=None, min_length=1, max_length=MAX_FEATURE_REFS, description="'<feature_view>:<feature>' each"
    )
    feature_service: str | None = Field(default=None, max_length=128, description="instead of feature_refs, e.g. churn_v1")
    entity_rows: list[dict[str, str | int]] = Field(min_length=1, max_length=MAX_ENTITY_ROWS)

    @model_validator(mode="after")
    def _one_selection(self):
        if (self.feature_refs is None) == (self.feature_service is None):
            raise ValueError("give exactly one of 'feature_refs' and 'feature_service'")
        return self


class OnlineFeaturesResponse(BaseModel):
    results: list[dict[str, Any]] = Field(
        description="one per entity row, in order: join keys, features by name (null without a stored value), "
                    "'status' (ok | partial | missing) and 'missing' (the features without a value)"
    )


class MaterializeRequest(StrictModel):
    feature_views: list[ViewName] | None = Field(default=None, min_length=1, max_length=50, description="default: all")
    incremental: bool = True
    start_date: datetime | None = Field(default=None, description="full materialization only; default 1970-01-01")
    end_date: datetime | None = Field(default=None, description="default: now")


class MaterializeAccepted(BaseModel):
    job_id: str
    kind: str = "materialization"
    status: str
    feature_views: list[str]
    incremental: bool


class FieldPublic(BaseModel):
    name: str
    type: str


class MaterializedWindow(BaseModel):
    start: datetime
    end: datetime


class FeatureViewPublic(BaseModel):
    name: str
    features: list[str]
    join_keys: list[str]
    ttl_seconds: float | None
    schema_: list[FieldPublic] = Field(default_factory=list, alias="schema",
                                       description="join keys, then features, with their types")
    online: bool = True
    last_materialized: MaterializedWindow | None = Field(default=None, description="the newest materialized window; null: never")


class FeatureServicePublic(BaseModel):
    name: str
    features: list[str]


class FeatureCatalog(BaseModel):
    feature_views: list[FeatureViewPublic]
    feature_services: list[FeatureServicePublic]


class ApplyResult(BaseModel):
    project: str
    feature_views: list[str]
    feature_services: list[str]
    applied: bool


class DefinitionsPlan(BaseModel):
    added: list[str] = Field(description="'<kind>:<name>' of each object the change adds (kind: entity, source, "
                                         "feature_view, feature_service)")
    changed: list[str]
    removed: list[str]
    unchanged: list[str]


class DefinitionsApplied(BaseModel):
    dry_run: bool
    revision: int | None = Field(description="the revision now current (dry run: the one the plan was made against)")
    plan: DefinitionsPlan
    project: str | None = None


class DefinitionsRevision(BaseModel):
    revision: int
    revisions: list[int] = Field(description="every revision of the tenant's definitions, oldest first")
    document: dict[str, Any]
    plan: DefinitionsPlan
    applied_by: str
    applied_at: datetime
