"""Run configuration of the ``feature_materialization`` job (one definition for the API, the
schedule and the Dagster UI), in the style of ``resources.jobs.specs``.

The job holds one asset, ``online_features``: it materializes the tenant's views (all of them, or
those ``feature_views`` names).
"""

from datetime import datetime
from typing import Any

import dagster as dg
from pydantic import Field

from resources.infra.state_db import as_utc
from resources.jobs.specs import JobContext

FEATURE_MATERIALIZATION_JOB = "feature_materialization"
MATERIALIZATION_ASSET = "online_features"  # the job's one asset (and op)


def parse_timestamp(value: str | None, name: str) -> datetime | None:
    """ISO 8601; a date or naive time is UTC."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{name} must be an ISO 8601 date or time, got {value!r}") from None
    return as_utc(parsed)


class MaterializationConfig(dg.Config):
    context: JobContext
    feature_views: list[str] | None = Field(default=None, description="views to materialize; default all")
    incremental: bool = Field(default=True, description="from where the last run ended (or end - ttl) to end_date")
    start_date: str | None = Field(default=None, description="ISO 8601; full runs only (default 1970-01-01)")
    end_date: str | None = Field(default=None, description="ISO 8601 (default: now)")

    def window(self) -> tuple[datetime | None, datetime | None]:
        return parse_timestamp(self.start_date, "start_date"), parse_timestamp(self.end_date, "end_date")


def materialization_run_config(config: MaterializationConfig) -> dict[str, Any]:
    """``{"ops": {"online_features": {"config": ...}}}``."""
    return {"ops": {MATERIALIZATION_ASSET: {"config": config.model_dump()}}}
