"""Monitoring policies: per model, whether drift should trigger a retraining, after how many
consecutive drifted reports, how long to wait between triggers, and what to do with the result.

A tenant's caller writes the policy (``put``); the monitoring sensor reads the enabled ones and
records each trigger. ``record_trigger`` is a compare-and-set on the report id in one UPDATE, so
two sensor ticks (or two sensor processes) that see the same report never both record (and launch)
a retraining for it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from resources.errors import InvalidRequest
from resources.infra.state_db import StateStore, UTCDateTime, metadata, utcnow
from resources.vocabulary import PROMOTE_CHOICES

MIN_CONSECUTIVE_REPORTS, MAX_CONSECUTIVE_REPORTS = 1, 100
MIN_COOLDOWN_HOURS, MAX_COOLDOWN_HOURS = 0.0, 8760.0  # up to a year
MAX_ENABLED_POLICIES = 10_000  # what one sensor tick reads at most

monitoring_policies = sa.Table(
    "monitoring_policies",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("model_id", sa.String(64), primary_key=True),
    sa.Column("retrain_on_drift", sa.Boolean, nullable=False),
    sa.Column("consecutive_reports", sa.Integer, nullable=False),
    sa.Column("cooldown_hours", sa.Float, nullable=False),
    sa.Column("promote", sa.String(32), nullable=False),  # one of PROMOTE_CHOICES
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("updated_by", sa.String(256), nullable=False),
    # the sensor's: the last retraining this policy triggered (kept when the policy is updated)
    sa.Column("last_triggered_at", UTCDateTime(), nullable=True),
    sa.Column("last_trigger_report_id", sa.Integer, nullable=True),
    sa.Column("last_trigger_job_id", sa.String(64), nullable=True),
)

_SETTINGS = ("retrain_on_drift", "consecutive_reports", "cooldown_hours", "promote", "updated_at", "updated_by")


@dataclass(frozen=True)
class PolicyRecord:
    tenant_id: str
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


def _record(row: Any) -> PolicyRecord:
    return PolicyRecord(**{c.name: row[c.name] for c in monitoring_policies.columns})


def _invalid(field: str, message: str, value: Any) -> InvalidRequest:
    return InvalidRequest(f"{field} {message}", {"field": field, "value": value})


def check_policy(*, retrain_on_drift: Any, consecutive_reports: Any, cooldown_hours: Any, promote: Any) -> None:
    """Raise ``InvalidRequest`` naming the first field out of its type or bounds."""
    if not isinstance(retrain_on_drift, bool):
        raise _invalid("retrain_on_drift", "must be a boolean", retrain_on_drift)
    if (isinstance(consecutive_reports, bool) or not isinstance(consecutive_reports, int)
            or not MIN_CONSECUTIVE_REPORTS <= consecutive_reports <= MAX_CONSECUTIVE_REPORTS):
        raise _invalid("consecutive_reports", f"must be an integer from {MIN_CONSECUTIVE_REPORTS} to {MAX_CONSECUTIVE_REPORTS}",
                       consecutive_reports)
    if (isinstance(cooldown_hours, bool) or not isinstance(cooldown_hours, int | float) or not math.isfinite(cooldown_hours)
            or not MIN_COOLDOWN_HOURS <= cooldown_hours <= MAX_COOLDOWN_HOURS):
        raise _invalid("cooldown_hours", f"must be a number from {MIN_COOLDOWN_HOURS:g} to {MAX_COOLDOWN_HOURS:g}", cooldown_hours)
    if promote not in PROMOTE_CHOICES:
        raise _invalid("promote", f"must be one of {', '.join(PROMOTE_CHOICES)}", promote)


class PolicyStore:
    def __init__(self, state: StateStore) -> None:
        self.state = state

    def put(self, tenant_id: str, model_id: str, *, retrain_on_drift: bool, consecutive_reports: int, cooldown_hours: float,
            promote: str, actor: str) -> PolicyRecord:
        """Create or replace the model's policy (``InvalidRequest`` naming a field out of bounds).
        The last trigger's fields are kept: updating a policy does not reset its cooldown."""
        check_policy(retrain_on_drift=retrain_on_drift, consecutive_reports=consecutive_reports,
                     cooldown_hours=cooldown_hours, promote=promote)
        row = dict(tenant_id=tenant_id, model_id=model_id, retrain_on_drift=retrain_on_drift,
                   consecutive_reports=consecutive_reports, cooldown_hours=float(cooldown_hours), promote=promote,
                   updated_at=utcnow(), updated_by=actor[:256])
        with self.state.begin() as conn:
            _upsert(conn, row)
            found = conn.execute(self._select(tenant_id, model_id)).mappings().one()
        return _record(found)

    def get(self, tenant_id: str, model_id: str) -> PolicyRecord | None:
        with self.state.begin() as conn:
            row = conn.execute(self._select(tenant_id, model_id)).mappings().first()
        return None if row is None else _record(row)

    def enabled(self) -> list[PolicyRecord]:
        """Every tenant's policies with ``retrain_on_drift`` set, at most ``MAX_ENABLED_POLICIES``."""
        p = monitoring_policies
        query = (sa.select(p).where(p.c.retrain_on_drift.is_(True))
                 .order_by(p.c.tenant_id, p.c.model_id).limit(MAX_ENABLED_POLICIES))
        with self.state.begin() as conn:
            return [_record(row) for row in conn.execute(query).mappings()]

    def record_trigger(self, tenant_id: str, model_id: str, *, report_id: int, job_id: str, at: datetime) -> bool:
        """Record that report ``report_id`` triggered job ``job_id``, only if no report at or after
        it has triggered already (one UPDATE ... WHERE: of two concurrent callers for the same
        report, one wins). False when another won, the report is older, or there is no policy."""
        p = monitoring_policies
        stmt = (
            p.update()
            .where(p.c.tenant_id == tenant_id, p.c.model_id == model_id,
                   sa.or_(p.c.last_trigger_report_id.is_(None), p.c.last_trigger_report_id < report_id))
            .values(last_triggered_at=at, last_trigger_report_id=report_id, last_trigger_job_id=job_id)
        )
        with self.state.begin() as conn:
            return conn.execute(stmt).rowcount == 1

    def delete(self, tenant_id: str, model_id: str) -> bool:
        p = monitoring_policies
        with self.state.begin() as conn:
            return conn.execute(p.delete().where(p.c.tenant_id == tenant_id, p.c.model_id == model_id)).rowcount == 1

    @staticmethod
    def _select(tenant_id: str, model_id: str) -> sa.Select:
        p = monitoring_policies
        return sa.select(p).where(p.c.tenant_id == tenant_id, p.c.model_id == model_id)


def _upsert(conn: sa.Connection, row: dict[str, Any]) -> None:
    """Insert the policy, or update the settings of the one present (never the trigger fields)."""
    table = monitoring_policies
    dialect = conn.dialect.name
    if dialect in ("sqlite", "postgresql"):
        if dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:
            from sqlalchemy.dialects.postgresql import insert
        stmt = insert(table).values(**row)
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.c.tenant_id, table.c.model_id],
            set_={name: stmt.excluded[name] for name in _SETTINGS},
        )
        conn.execute(stmt)
        return
    # any other database: update, else insert, in the caller's transaction
    where = (table.c.tenant_id == row["tenant_id"], table.c.model_id == row["model_id"])
    if conn.execute(table.update().where(*where).values({k: row[k] for k in _SETTINGS})).rowcount == 0:
        conn.execute(table.insert().values(**row))
