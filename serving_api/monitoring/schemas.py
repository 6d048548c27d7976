"""Monitoring answers: the reference's drift fields, with the platform's beside them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from resources.vocabulary import Promote
from serving_api.common_schemas import StrictModel

MAX_FEEDBACK_ITEMS = 1000
Label = str | int | float | bool


class FeatureDriftPublic(BaseModel):
    drifted: bool
    statistic: float | None
    p_value: float | None
    method: str | None
    status: str  # ok | insufficient_data | no_reference
    mode: str | None = None  # ks_2samp: exact | asymp
    p_value_corrected: float | None = None
    psi: float | None = None
    wasserstein_normed: float | None = None
    reference_size: int | None = None
    current_size: int | None = None
    missing_reference: int | None = None
    missing_current: int | None = None


class DriftPublic(BaseModel):
    model_id: str
    overall_drift: bool
    features_checked: int
    features_drifted: int
    results: dict[str, FeatureDriftPublic]
    version: str
    alpha: float
    correction: str
    window: dict[str, str]
    reference: dict[str, Any]
    current: dict[str, Any]


class PerformancePublic(BaseModel):
    model_id: str
    version: str | None
    model_type: str
    period_hours: float
    window: dict[str, str]
    requests: int
    answered: int
    rows: int
    errors: int
    error_rate: float | None
    errors_by_status: dict[str, int]
    latency_ms: dict[str, float | None]
    throughput_per_hour: list[dict[str, Any]]
    predictions: dict[str, Any]
    sampled: bool
    versions: dict[str, dict[str, Any]]
    ground_truth: dict[str, Any]


class FeedbackItem(StrictModel):
    request_id: str = Field(min_length=1, max_length=128)
    label: Label | list[Label] = Field(description="one label, or one per row for a request of several rows")


class FeedbackBody(StrictModel):
    items: list[FeedbackItem] = Field(min_length=1, max_length=MAX_FEEDBACK_ITEMS)


class FeedbackPublic(BaseModel):
    model_id: str
    received: int
    matched: int
    stored: int
    unknown: int
    unknown_request_ids: list[str]
    rejected: list[dict[str, Any]]


class DriftHistoryPublic(BaseModel):
    model_id: str
    reports: list[dict[str, Any]]
    count: int
    next_before_id: int | None


class PolicyBody(StrictModel):
    retrain_on_drift: bool
    consecutive_reports: int = Field(default=2, ge=1, le=100, description="drifted reports in a row before retraining")
    cooldown_hours: float = Field(default=24.0, ge=0, le=8760, description="no second retraining within this time")
    promote: Promote = "none"


class PolicyPublic(BaseModel):
    model_id: str
    retrain_on_drift: bool
    consecutive_reports: int
    cooldown_hours: float
    promote: str
    updated_at: datetime
    updated_by: str
    last_triggered_at: datetime | None
    last_trigger_report_id: int | None
    last_trigger_job_id: str | None


class ReferenceBody(StrictModel):
    """A reference for a version: a parquet file (``source: "path"``, a path under the data-access
    policy) or a window of the version's own traffic (``source: "traffic"``)."""

    source: Literal["path", "traffic"]
    version: str | None = Field(default=None, max_length=64, description="semver or stage; default production, else newest")
    path: str | None = Field(default=None, max_length=1024)
    window_hours: float | None = None
    start: datetime | None = None
    end: datetime | None = None

    @model_validator(mode="after")
    def _one_source(self):
        if self.source == "path" and not self.path:
            raise ValueError("source 'path' needs a path")
        if self.source == "path" and (self.window_hours is not None or self.start or self.end):
            raise ValueError("a window belongs to source 'traffic'")
        if self.source == "traffic" and self.path:
            raise ValueError("a path belongs to source 'path'")
        return self


class ReferencePublic(BaseModel):
    model_id: str
    version: str
    reference_id: int
    source: str
    rows: int
    features: list[str]
