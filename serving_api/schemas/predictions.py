"""Request and response bodies of online predictions and ensembles."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from serving_api.schemas.common import StrictModel

Scalar = str | int | float | bool | None
MAX_INSTANCES = 1000
MAX_EXPLAINED_INSTANCES = 10


class PredictionOptions(StrictModel):
    return_probabilities: bool = True
    return_explanation: bool = False


class FeatureRows(StrictModel):
    features: dict[str, Scalar] | None = Field(default=None, max_length=1000)
    instances: list[dict[str, Scalar]] | None = Field(default=None, min_length=1, max_length=MAX_INSTANCES)
    options: PredictionOptions = Field(default_factory=PredictionOptions)

    @model_validator(mode="after")
    def _one_input(self):
        if (self.features is None) == (self.instances is None):
            raise ValueError("give exactly one of 'features' (one row) and 'instances' (a list of rows)")
        if self.options.return_explanation and self.instances and len(self.instances) > MAX_EXPLAINED_INSTANCES:
            raise ValueError(f"explanations are limited to {MAX_EXPLAINED_INSTANCES} instances per request")
        return self

    def rows(self) -> list[dict[str, Any]]:
        return [self.features] if self.features is not None else list(self.instances or [])


class PredictionRequest(FeatureRows):
    model_id: str = Field(max_length=64)
    version: str | None = Field(default=None, max_length=64, description="semantic version or stage; default production, else newest")


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
    min_models_required: int = Field(default=1, ge=1, le=20)
    timeout_ms: int = Field(default=2000, ge=10, le=60000, description="per-member time limit")


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
