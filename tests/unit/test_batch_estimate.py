"""A batch job's estimated completion: from the tenant's earlier batch jobs (start-up from
submission to the first scored rows, throughput after start-up), the stated defaults before there
is one, the job's own speed while it scores, its end once it ended."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest

from resources.jobs.records import JobStore
from serving_api.batch.service import (
    DEFAULT_STARTUP_S,
    DEFAULT_THROUGHPUT_ROWS_PER_S,
    KIND,
    estimated_completion,
    rates,
)


def _job(jobs: JobStore, tenant: str, *, status: str | None = None, **result):
    record, _ = jobs.create(tenant, kind=KIND, request={"n": id(result)}, submitted_by="t")
    if result:
        jobs.record_outcome(record.job_id, result=result)
    if status:
        jobs.record_run_state(record.job_id, status=status, finished_at=record.created_at + timedelta(seconds=60))
    return jobs.get(tenant, record.job_id)


def test_rates_are_the_medians_of_the_tenants_succeeded_jobs_else_the_defaults(state):
    jobs = JobStore(state)
    service = SimpleNamespace(jobs=jobs)
    assert rates(service, "acme") == (DEFAULT_STARTUP_S, DEFAULT_THROUGHPUT_ROWS_PER_S)
    for startup, speed in ((12, 100_000.0), (20, 140_000.0), (14, 120_000.0)):
        record = _job(jobs, "acme")
        first = (record.created_at + timedelta(seconds=startup)).isoformat()
        jobs.record_outcome(record.job_id, result={"first_rows_at": first, "scoring_rows_per_s": speed,
                                                   "throughput_rows_per_s": speed / 3})
        jobs.record_run_state(record.job_id, status="succeeded")
    _job(jobs, "acme", status="failed", first_rows_at=record.created_at.isoformat(), scoring_rows_per_s=1.0)
    startup, speed = rates(service, "acme")
    assert startup == pytest.approx(14, abs=0.01) and speed == 120_000.0
    assert rates(service, "other") == (DEFAULT_STARTUP_S, DEFAULT_THROUGHPUT_ROWS_PER_S)  # tenants apart
    # a job whose input was one block has no rate after start-up: its whole-run throughput counts
    small = _job(jobs, "small")
    jobs.record_outcome(small.job_id, result={"throughput_rows_per_s": 5_000.0})
    jobs.record_run_state(small.job_id, status="succeeded")
    assert rates(service, "small") == (DEFAULT_STARTUP_S, 5_000.0)


def test_the_estimate_follows_the_job(state):
    jobs = JobStore(state)
    submitted = _job(jobs, "acme")
    soon = submitted.created_at + timedelta(seconds=1)
    assert estimated_completion(submitted, 1_000_000, 10.0, 100_000.0, now=soon) == submitted.created_at + timedelta(seconds=20)
    late = submitted.created_at + timedelta(seconds=300)  # over the estimate: not in the past
    assert estimated_completion(submitted, 1_000_000, 10.0, 100_000.0, now=late) == late
    jobs.record_outcome(submitted.job_id, result={"rows_done": 400_000, "throughput_rows_per_s": 50_000.0})
    running = jobs.get("acme", submitted.job_id)
    assert estimated_completion(running, 1_000_000, 10.0, 100_000.0, now=soon) == soon + timedelta(seconds=12)
    jobs.record_run_state(submitted.job_id, status="succeeded", finished_at=soon)
    ended = jobs.get("acme", submitted.job_id)
    assert estimated_completion(ended, 1_000_000, 10.0, 100_000.0, now=late) == ended.finished_at
