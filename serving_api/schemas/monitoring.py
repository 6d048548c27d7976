"""Monitoring answers: the reference's drift fields, with the platform's beside them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


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
