"""Request and response bodies of the models API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from resources.vocabulary import FrameworkName, ModelType, Stage
from serving_api.common_schemas import StrictModel

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
SEMVER_PATTERN = r"^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$"
# MLflow's rule for tag keys; values are bounded.
TagKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.\-: /]{1,250}$")]
TagValue = Annotated[str, StringConstraints(max_length=5000)]


class ModelSource(StrictModel):
    """An MLflow model of this tenant to register as a version: a run id or a model URI."""

    run_id: str | None = Field(default=None, pattern=r"^[0-9a-f]{32}$")
    model_uri: str | None = Field(default=None, max_length=1024, description="runs:/<run_id>/<name> or models:/m-<id>")

    def uri(self) -> str:
        if (self.run_id is None) == (self.model_uri is None):
            from resources.errors import InvalidRequest

            raise InvalidRequest("give exactly one of source.run_id and source.model_uri")
        return self.run_id or self.model_uri  # type: ignore[return-value]


class ModelCreate(StrictModel):
    name: str = Field(pattern=NAME_PATTERN)
    description: str | None = Field(default=None, max_length=5000)
    model_type: ModelType = "classification"
    framework: FrameworkName = "sklearn"
    tags: dict[TagKey, TagValue] = Field(default_factory=dict, max_length=50)
    source: ModelSource | None = Field(default=None, description="register an existing MLflow model as version 1.0.0")


class ModelPublic(BaseModel):
    model_id: str
    name: str
    tenant_id: str
    description: str | None
    model_type: str
    framework: str
    tags: dict[str, str]
    current_version: str
    latest_version: str | None = Field(description="highest registered version; null until an artifact is registered")
    stage: str
    created_at: datetime
    updated_at: datetime


class ModelsPublic(BaseModel):
    data: list[ModelPublic]
    count: int
    next_cursor: str | None


class StageChange(StrictModel):
    version: str = Field(pattern=SEMVER_PATTERN, max_length=64)
    target_stage: Stage
    via: Stage | None = Field(default=None, description="a stage to pass through first (e.g. development -> staging -> "
                                                        "production in one request); both moves are checked before either is made")


class StageChangePublic(BaseModel):
    model_id: str
    version: str
    from_stage: str
    via: str | None = None
    to_stage: str
    archived_versions: list[str]
    changed_by: str
    changed_at: datetime


class VersionCreate(StrictModel):
    source: ModelSource
    version: str | None = Field(default=None, pattern=SEMVER_PATTERN, max_length=64)
    bump: Literal["major", "minor", "patch"] = "minor"
    description: str | None = Field(default=None, max_length=5000)


class TransitionPublic(BaseModel):
    from_stage: str | None
    to_stage: str
    changed_by: str
    changed_at: datetime
    reason: str | None


class VersionPublic(BaseModel):
    version: str
    stage: str
    mlflow_version: int
    source: str
    run_id: str | None
    description: str | None
    created_at: datetime
    history: list[TransitionPublic]


class VersionsPublic(BaseModel):
    model_id: str
    data: list[VersionPublic]
    count: int
