"""The drift-report job's names and run config, shared by the API, the Dagster side and the sensors.

Reports are partitioned by model: one dynamic partition ``<tenant>:<model_id>`` per model that
has a production version (a sensor adds them), so each model's history of reports is one
partition's history of materializations in the Dagster UI.
"""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from resources.tenants.ids import is_valid_tenant

DRIFT_REPORT_JOB = "drift_reports"  # the asset job of drift_report; the schedule and the API launch it
MONITORED_MODELS = "monitored_models"  # the dynamic partitions definition's name
_SEPARATOR = ":"


class DriftReportConfig(dg.Config):
    window_hours: float = Field(default=24.0, gt=0, le=24 * 31, description="the window of traffic ending at the run")
    alpha: float = Field(default=0.05, gt=0, lt=1)
    correction: str = Field(default="fdr_bh", description="none | bonferroni | fdr_bh")


def monitored_key(tenant_id: str, model_id: str) -> str:
    return f"{tenant_id}{_SEPARATOR}{model_id}"


def parse_monitored_key(key: str) -> tuple[str, str]:
    """(tenant, model id) of a partition key; ValueError for a key this platform did not make."""
    tenant_id, _, model_id = key.partition(_SEPARATOR)
    if not is_valid_tenant(tenant_id) or not model_id:
        raise ValueError(f"not a monitored-model partition key: {key!r}")
    return tenant_id, model_id
