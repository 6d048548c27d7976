"""Retention: each tenant's records older than its retention (``settings.retention_for``) go.

- ``prediction_log`` rows older than ``prediction_log_days`` (by ``at``);
- ``prediction_feedback`` (ground truth) received more than ``prediction_log_days`` ago: it lives
  as long as the predictions it labels;
- ``audit_log`` rows older than ``audit_log_days`` (rows without a tenant: the default retention);
- finished jobs (succeeded, failed, cancelled) that ended more than ``finished_jobs_days`` ago;
- idempotency keys of jobs created more than ``idempotency_keys_days`` ago are set to NULL (the
  job stays; the same key starts a new job afterwards).

Work goes tenant by tenant in batches of ``batch_size`` rows, each batch its own short
transaction, so the API's writers (prediction log, audit) are never held up for long. The
Dagster job ``retention`` (``pipelines/retention.py``) runs this on a schedule.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa

from resources.infra.state_db import StateStore, utcnow
from resources.jobs.records import jobs
from resources.predictions.feedback import prediction_feedback
from resources.predictions.log import prediction_log
from resources.tenants.audit import audit_log
from resources.vocabulary import TERMINAL_STATUSES

log = logging.getLogger("mlservice.retention")


class RetentionDays(Protocol):
    prediction_log_days: int
    audit_log_days: int
    finished_jobs_days: int
    idempotency_keys_days: int


class RetentionSettings(Protocol):
    """What is read from ``mlservice.config.settings.Settings``."""

    retention: RetentionDays

    def retention_for(self, tenant_id: str) -> RetentionDays: ...


@dataclass(frozen=True, eq=False)
class _Target:
    name: str
    table: sa.Table
    key: sa.Column
    time: Any  # a column expression
    days: str  # the RetentionDays field
    only: Any = None  # an extra condition
    clear: str | None = None  # set this column to NULL instead of deleting the row


TARGETS = (
    _Target("prediction_log", prediction_log, prediction_log.c.id, prediction_log.c.at, "prediction_log_days"),
    _Target("prediction_feedback", prediction_feedback, prediction_feedback.c.request_id, prediction_feedback.c.received_at,
            "prediction_log_days"),
    _Target("audit_log", audit_log, audit_log.c.id, audit_log.c.at, "audit_log_days"),
    _Target("finished_jobs", jobs, jobs.c.job_id, sa.func.coalesce(jobs.c.finished_at, jobs.c.updated_at),
            "finished_jobs_days", only=jobs.c.status.in_(sorted(TERMINAL_STATUSES))),
    _Target("idempotency_keys", jobs, jobs.c.job_id, jobs.c.created_at, "idempotency_keys_days",
            only=jobs.c.idempotency_key.is_not(None), clear="idempotency_key"),
)


def apply_retention(
    state: StateStore, settings: RetentionSettings, *, now: datetime | None = None, batch_size: int = 1000,
) -> dict[str, int]:
    """Delete (or clear) what every tenant keeps past its retention; the counts per target."""
    now = now or utcnow()
    counts = {}
    for target in TARGETS:
        counts[target.name] = sum(
            _apply(state, target, tenant, getattr(_days_for(settings, tenant), target.days), now, batch_size)
            for tenant in _tenants(state, target.table)
        )
    log.info("retention applied: %s", counts)
    return counts


def _days_for(settings: RetentionSettings, tenant: str | None) -> RetentionDays:
    return settings.retention if tenant is None else settings.retention_for(tenant)


def _tenants(state: StateStore, table: sa.Table) -> list[str | None]:
    with state.begin() as conn:
        return list(conn.execute(sa.select(table.c.tenant_id).distinct()).scalars())


def _apply(state: StateStore, target: _Target, tenant: str | None, days: int, now: datetime, batch_size: int) -> int:
    table = target.table
    tenant_is = table.c.tenant_id.is_(None) if tenant is None else table.c.tenant_id == tenant
    conditions = [tenant_is, target.time < now - timedelta(days=days)]
    if target.only is not None:
        conditions.append(target.only)
    batch = sa.select(target.key).where(*conditions).limit(batch_size).scalar_subquery()
    if target.clear is None:
        statement = table.delete().where(tenant_is, target.key.in_(batch))  # a key may be unique per tenant only
    else:
        statement = table.update().where(tenant_is, target.key.in_(batch)).values({target.clear: None})
    total = 0
    while True:
        with state.begin() as conn:
            done = conn.execute(statement).rowcount
        total += done
        if done < batch_size:
            return total
