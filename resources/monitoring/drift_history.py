"""Stored drift reports: every drift check the monitoring loop runs (on its schedule or through the
API), one row per check, so a model's drift has a history and a sensor can act on new reports.

A row keeps the check's outcome (``status``), the headline numbers of an ``ok`` report as columns
(so a policy reads them without parsing), and the whole report (or, for a check that did not
produce one, its error details) as compact JSON. Ids grow with every insert: ``history`` pages by
id per model, ``after`` scans every tenant's new rows from a cursor.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa

from resources.infra.state_db import StateStore, UTCDateTime, metadata, utcnow

STATUSES = ("ok", "insufficient_data", "no_reference", "failed")
SOURCES = ("schedule", "api")
MAX_HISTORY_PAGE = 100
DEFAULT_AFTER_LIMIT = 500

drift_reports = sa.Table(
    "drift_reports",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("model_id", sa.String(64), nullable=False),
    sa.Column("version", sa.String(64), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("window_start", UTCDateTime(), nullable=True),
    sa.Column("window_end", UTCDateTime(), nullable=True),
    sa.Column("status", sa.String(32), nullable=False),  # one of STATUSES
    sa.Column("overall_drift", sa.Boolean, nullable=True),  # the three counts: set for status "ok" only
    sa.Column("features_checked", sa.Integer, nullable=True),
    sa.Column("features_drifted", sa.Integer, nullable=True),
    sa.Column("report", sa.Text, nullable=True),  # JSON: the whole report, or the error details
    sa.Column("source", sa.String(32), nullable=False),  # one of SOURCES
    sa.Column("dagster_run_id", sa.String(64), nullable=True),
    sa.Index("ix_drift_reports_tenant_model_id", "tenant_id", "model_id", "id"),
)


@dataclass(frozen=True)
class DriftReportRecord:
    id: int
    tenant_id: str
    model_id: str
    version: str | None
    created_at: datetime
    window_start: datetime | None
    window_end: datetime | None
    status: str
    overall_drift: bool | None
    features_checked: int | None
    features_drifted: int | None
    report: dict[str, Any] | None
    source: str
    dagster_run_id: str | None


def _record(row: Any) -> DriftReportRecord:
    return DriftReportRecord(
        id=row["id"], tenant_id=row["tenant_id"], model_id=row["model_id"], version=row["version"],
        created_at=row["created_at"], window_start=row["window_start"], window_end=row["window_end"],
        status=row["status"], overall_drift=row["overall_drift"], features_checked=row["features_checked"],
        features_drifted=row["features_drifted"], report=None if row["report"] is None else orjson.loads(row["report"]),
        source=row["source"], dagster_run_id=row["dagster_run_id"],
    )


def _dump(report: dict[str, Any]) -> str:
    """Compact JSON; numpy values are written as numbers, NaN and infinities as null (valid JSON
    for every reader), anything else unknown as its ``str``."""
    return orjson.dumps(report, default=str, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS).decode()


class DriftReportStore:
    def __init__(self, state: StateStore) -> None:
        self.state = state

    def add(self, tenant_id: str, model_id: str, *, status: str, report: dict[str, Any] | None, version: str | None = None,
            window: tuple[datetime, datetime] | None = None, source: str = "schedule", dagster_run_id: str | None = None) -> int:
        """Store one check's outcome and return its id. For ``status == "ok"`` the report's
        ``overall_drift``, ``features_checked`` and ``features_drifted`` are copied to their
        columns. An unknown status or source, or an ``ok`` without a report, is a ValueError (a
        caller's bug, not a request's)."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
        if source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
        counts: dict[str, Any] = {"overall_drift": None, "features_checked": None, "features_drifted": None}
        if status == "ok":
            if report is None:
                raise ValueError("an 'ok' drift report needs its report")
            overall, checked, drifted = (report.get(k) for k in counts)
            counts = {"overall_drift": None if overall is None else bool(overall),
                      "features_checked": None if checked is None else int(checked),
                      "features_drifted": None if drifted is None else int(drifted)}
        start, end = window if window is not None else (None, None)
        with self.state.begin() as conn:
            result = conn.execute(drift_reports.insert().values(
                tenant_id=tenant_id, model_id=model_id, version=version, created_at=utcnow(), window_start=start,
                window_end=end, status=status, report=None if report is None else _dump(report), source=source,
                dagster_run_id=dagster_run_id, **counts,
            ))
            return int(result.inserted_primary_key[0])

    def history(self, tenant_id: str, model_id: str, *, limit: int = 20, before_id: int | None = None) -> list[DriftReportRecord]:
        """The model's reports, newest first, at most ``limit`` (capped at ``MAX_HISTORY_PAGE``);
        ``before_id`` is the id of the last report of the previous page."""
        limit = max(0, min(limit, MAX_HISTORY_PAGE))
        query = sa.select(drift_reports).where(drift_reports.c.tenant_id == tenant_id, drift_reports.c.model_id == model_id)
        if before_id is not None:
            query = query.where(drift_reports.c.id < before_id)
        return self._fetch(query.order_by(drift_reports.c.id.desc()).limit(limit))

    def after(self, last_id: int, *, limit: int = DEFAULT_AFTER_LIMIT) -> list[DriftReportRecord]:
        """Every tenant's reports with an id above ``last_id``, oldest first, at most ``limit``: a
        sensor keeps the last id it handled as its cursor."""
        query = sa.select(drift_reports).where(drift_reports.c.id > last_id)
        return self._fetch(query.order_by(drift_reports.c.id.asc()).limit(max(0, limit)))

    def recent(self, tenant_id: str, model_id: str, n: int) -> list[DriftReportRecord]:
        """The model's ``n`` latest reports of any status, newest first (what a policy counting
        consecutive drifted reports reads)."""
        query = sa.select(drift_reports).where(drift_reports.c.tenant_id == tenant_id, drift_reports.c.model_id == model_id)
        return self._fetch(query.order_by(drift_reports.c.id.desc()).limit(max(0, n)))

    def _fetch(self, query: sa.Select) -> list[DriftReportRecord]:
        with self.state.begin() as conn:
            return [_record(row) for row in conn.execute(query).mappings()]
