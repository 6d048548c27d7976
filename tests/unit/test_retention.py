"""Retention: each tenant's prediction log, audit log, finished jobs and idempotency keys past
its retention go (in batches); recent rows, unfinished jobs and other tenants' longer retention
stay. The Dagster job does the same in process, and the daily schedule is registered."""

from __future__ import annotations

import json
from datetime import timedelta

import dagster as dg
import sqlalchemy as sa

from mlservice.config.settings import Settings
from resources.infra.state_db import StateStore, utcnow
from resources.jobs.records import jobs
from resources.predictions.feedback import prediction_feedback
from resources.predictions.log import prediction_log
from resources.retention import apply_retention
from resources.tenants.audit import audit_log

NOW = utcnow()
# tenant-b keeps predictions 60 days, audit 120 days and finished jobs 200 days; the rest default
OVERRIDES = {"tenant-b": {"prediction_log_days": 60, "audit_log_days": 120, "finished_jobs_days": 200}}


def _days_ago(days: float):
    return NOW - timedelta(days=days)


def _seed(state: StateStore) -> None:
    predictions = [("a-old", "tenant-a", 40)] * 5 + [("a-new", "tenant-a", 1), ("b-old", "tenant-b", 40)]
    audits = [("a-old", "tenant-a", 100), ("a-new", "tenant-a", 10), ("anon-old", None, 100), ("b-old", "tenant-b", 100)]
    job_rows = [  # (job id, tenant, status, created days ago, finished days ago, idempotency key)
        ("a-done-old", "tenant-a", "succeeded", 100, 95, "k1"),
        ("a-running-old", "tenant-a", "running", 100, None, "k2"),
        ("a-done-recent", "tenant-a", "failed", 10, 9, "k3"),
        ("a-new", "tenant-a", "submitted", 1, None, "k4"),
        ("b-done-old", "tenant-b", "cancelled", 100, 95, "k5"),
    ]
    with state.begin() as conn:
        conn.execute(prediction_log.insert(), [
            dict(request_id=f"{rid}-{i}", tenant_id=tenant, model_id="m", model_version="1.0.0", at=_days_ago(days))
            for i, (rid, tenant, days) in enumerate(predictions)
        ])
        conn.execute(prediction_feedback.insert(), [  # one request id in two tenants: only tenant-a's is old enough
            dict(tenant_id=tenant, request_id="shared", model_id="m", label="1", received_at=_days_ago(days))
            for tenant, days in (("tenant-a", 40), ("tenant-b", 40), ("tenant-a-recent", 1))
        ])
        conn.execute(audit_log.insert(), [
            dict(request_id=rid, tenant_id=tenant, method="POST", path="/api/v1/models", status=201, at=_days_ago(days))
            for rid, tenant, days in audits
        ])
        conn.execute(jobs.insert(), [
            dict(job_id=job_id, tenant_id=tenant, kind="training", status=status, request=json.dumps({}), request_hash="h",
                 idempotency_key=key, submitted_by="u", created_at=_days_ago(created), updated_at=_days_ago(finished or 0),
                 finished_at=None if finished is None else _days_ago(finished))
            for job_id, tenant, status, created, finished, key in job_rows
        ])


def _left(state: StateStore) -> dict:
    with state.begin() as conn:
        return {
            "predictions": sorted({r.rsplit("-", 1)[0] for r in conn.execute(sa.select(prediction_log.c.request_id)).scalars()}),
            "audit": sorted(conn.execute(sa.select(audit_log.c.request_id)).scalars()),
            "feedback": sorted(conn.execute(sa.select(prediction_feedback.c.tenant_id)).scalars()),
            "jobs": dict(conn.execute(sa.select(jobs.c.job_id, jobs.c.idempotency_key)).all()),
        }


EXPECTED = {
    "predictions": ["a-new", "b-old"],
    "audit": ["a-new", "b-old"],
    "feedback": ["tenant-a-recent", "tenant-b"],
    "jobs": {"a-running-old": None, "a-done-recent": None, "a-new": "k4", "b-done-old": None},
}


def test_old_rows_go_recent_rows_and_longer_retentions_stay(state, tmp_path):
    _seed(state)
    settings = Settings(data_dir=tmp_path, retention_overrides=OVERRIDES)
    counts = apply_retention(state, settings, now=NOW, batch_size=2)  # five old predictions: three batches
    assert counts == {"prediction_log": 5, "prediction_feedback": 1, "audit_log": 2, "finished_jobs": 1, "idempotency_keys": 3}
    assert _left(state) == EXPECTED
    assert apply_retention(state, settings, now=NOW) == dict.fromkeys(counts, 0)  # nothing left to do


def test_the_dagster_job_applies_the_settings_retention(state, tmp_path, monkeypatch):
    from pipelines.retention import retention_job

    monkeypatch.setenv("MLSERVICE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MLSERVICE_RETENTION_OVERRIDES", json.dumps(OVERRIDES))
    _seed(state)
    result = retention_job.execute_in_process(resources={"state": state})
    assert result.success
    assert result.output_for_node("apply_retention_op")["prediction_log"] == 5
    assert _left(state) == EXPECTED


def test_the_daily_schedule_is_registered_on_the_configured_cron(tmp_path, monkeypatch):
    monkeypatch.setenv("MLSERVICE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MLSERVICE_RETENTION_CRON", "5 4 * * *")
    from pipelines.definitions import build_definitions

    repository = build_definitions().get_repository_def()
    schedule = repository.get_schedule_def("retention_daily")
    assert schedule.cron_schedule == "5 4 * * *" and schedule.job_name == "retention"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert repository.get_job("retention").name == "retention"
