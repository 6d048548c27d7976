"""Request and response bodies of online predictions and ensembles."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from serving_api.common_schemas import StrictModel

Scalar = str | int | float | bool | None
MAX_INSTANCES = 1000
MAX_ENTITIES = 500  # rows of one online-store lookup, as POST /api/v1/features/online allows
MAX_EXPLAINED_INSTANCES = 10
# An entity names its join keys (e.g. {"customer_id": "cust-123"}); their types are checked by
# the feature store against the model's feature service (a wrong key or type is a 400 there).
Entity = dict[str, Scalar]


class PredictionOptions(StrictModel):
    return_probabilities: bool = True
    return_explanation: bool = False


class FeatureRows(StrictModel):
    features: dict[str, Scalar] | None = Field(default=None, max_length=1000)
    instances: list[dict[str, Scalar]] | None = Field(default=None, min_length=1, max_length=MAX_INSTANCES)
    options: PredictionOptions = Field(default_factory=PredictionOptions)

    @model_validator(mode="after")
    def _one_input(self):
        self._check_inputs()
        return self

    def _check_inputs(self) -> None:
        if (self.features is None) == (self.instances is None):
            raise ValueError("give exactly one of 'features' (one row) and 'instances' (a list of rows)")
        self._check_explained(self.instances)

    def _check_explained(self, rows: list | None) -> None:
        if self.options.return_explanation and rows and len(rows) > MAX_EXPLAINED_INSTANCES:
            raise ValueError(f"explanations are limited to {MAX_EXPLAINED_INSTANCES} instances per request")

    def rows(self) -> list[dict[str, Any]]:
        return [self.features] if self.features is not None else list(self.instances or [])

    @property
    def row_count(self) -> int:
        """Rows asked for (what the rate limit charges)."""
        return 1 if self.features is not None else len(self.instances or ())


class PredictionRequest(FeatureRows):
    """One of: ``features`` (one row), ``instances`` (rows), ``entity`` (one entity whose features
    the model's feature service reads from the online store) or ``entities`` (several)."""

    model_id: str = Field(max_length=64)
    version: str | None = Field(default=None, max_length=64, description="semantic version or stage; default production, else newest")
    entity: Entity | None = Field(
        default=None, max_length=16,
        description="join keys of one entity, e.g. {\"customer_id\": \"cust-123\"}: its features come from the online "
                    "store, through the feature service the model version was trained from",
    )
    entities: list[Entity] | None = Field(
        default=None, min_length=1, max_length=MAX_ENTITIES, description="several entities, like 'entity'",
    )
    deployment_id: str | None = Field(
        default=None, max_length=64,
        description="answer through this Ray Serve deployment of the model (its replicas, its canary split) instead "
                    "of in process; the response's served_by says which path answered",
    )

    def _check_inputs(self) -> None:
        given = [self.features, self.instances, self.entity, self.entities]
        if sum(value is not None for value in given) != 1:
            raise ValueError("give exactly one of 'features' (one row), 'instances' (a list of rows), "
                             "'entity' (one entity's join keys) and 'entities' (a list of them)")
        self._check_explained(self.instances or self.entities)

    @property
    def by_entity(self) -> bool:
        return self.entity is not None or self.entities is not None

    @property
    def single(self) -> bool:
        """One row asked (``features`` or ``entity``): the response holds scalars, not lists."""
        return self.features is not None or self.entity is not None

    def entity_rows(self) -> list[dict[str, Any]]:
        return [self.entity] if self.entity is not None else list(self.entities or [])

    @property
    def row_count(self) -> int:
        if self.entity is not None or self.features is not None:
            return 1
        return len(self.instances or self.entities or ())


class PredictionResponse(BaseModel):
    request_id: str
    model_id: str
    version: str
    prediction: list[Any]
    probabilities: list[list[float]] | None = None
    confidence: float | list[float] | None = Field(
        default=None, description="top class probability; a list (one per row) for 'instances' requests"
    )
    latency_ms: float
    explanation: dict[str, Any] | list[dict[str, Any]] | None = None
    # By entity only: the entity (or entities) asked, the feature service read and the feature
    # values the model was given (a list, one per entity, for 'entities' requests).
    entity: dict[str, Any] | None = None
    entities: list[dict[str, Any]] | None = None
    feature_service: str | None = None
    features: dict[str, Any] | list[dict[str, Any]] | None = None
    # Which path answered: {"path": "in_process"} or {"path": "deployment", "deployment_id", "role": stable|canary}
    served_by: dict[str, Any] | None = None


class EnsembleMember(StrictModel):
    model_id: str = Field(max_length=64)
    version: str | None = Field(default=None, max_length=64)
    weight: float = 1.0


class EnsembleCreate(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
    method: Literal["voting_soft", "voting_hard", "averaging"] = "voting_soft"
    models: list[EnsembleMember] = Field(min_length=1, max_length=20)
    parallel_inference: bool = True
    fail_on_partial: bool = False
    min_models_required: int = Field(default=1, ge=1, le=20, description="at most the number of models")
    timeout_ms: int = Field(default=2000, ge=10, le=60000, description="per-member time limit")

    @model_validator(mode="after")
    def _enough_members(self) -> EnsembleCreate:
        # part of the schema (checked with it, reported like it): JSON Schema cannot compare two fields
        if self.min_models_required > len(self.models):
            raise ValueError(f"min_models_required ({self.min_models_required}) exceeds the number of models ({len(self.models)})")
        return self


class EnsemblePublic(BaseModel):
    ensemble_id: str
    name: str
    tenant_id: str
    method: str
    models: list[dict[str, Any]]
    parallel_inference: bool
    fail_on_partial: bool
    min_models_required: int
    timeout_ms: int
    model_type: str
    classes: list[Any] | None
    created_at: datetime


class EnsemblesPublic(BaseModel):
    data: list[EnsemblePublic]
    count: int


class MemberResult(BaseModel):
    model_id: str
    version: str | None
    weight: float
    status: Literal["ok", "failed", "timeout"]
    latency_ms: float
    error: str | None = None


class EnsemblePredictionResponse(BaseModel):
    request_id: str
    ensemble_id: str
    method: str
    prediction: list[Any]
    probabilities: list[list[float]] | None = None
    confidence: float | list[float] | None = None
    latency_ms: float
    members: list[MemberResult]
