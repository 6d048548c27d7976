"""The job a run works for. A run the API launched names its job (``context.job_id``, also a run
tag). A run launched from the Dagster UI's launchpad gives only the tenant and the job's own
settings: it registers itself as a job of that tenant (kind from the Dagster job's
``mlservice/kind`` tag, submitted by its ``requested_by``, "dagster-ui" by default), so it shows through
``GET /api/v1/jobs`` like the API's and the schedule's runs, and its status follows the run.
Every asset of the run resolves the same job (one record per run: its id is the idempotency key),
and starts the run's watch for a cancellation (``assets.run_watch``)."""

from __future__ import annotations

from typing import Any

import dagster as dg

from assets.run_watch import watch_cancellation
from resources.infra.state_db import utcnow
from resources.jobs.records import JobStore
from resources.jobs.specs import JobContext
from resources.tenants.ids import is_valid_tenant
from resources.vocabulary import JOB_KINDS, RUN_KIND


def job_of_run(job: JobContext, context: Any, jobs: JobStore, model_name: str | None = None) -> JobContext:
    """``job`` itself when it names the API's job; else the run's own job, created on first use."""
    watch_cancellation(context)
    if job.job_id:
        return job
    if not is_valid_tenant(job.tenant_id):
        raise dg.Failure(description=f"context.tenant_id {job.tenant_id!r} is not a tenant id", allow_retries=False)
    run = context.run
    kind = run.tags.get(RUN_KIND)
    if kind not in JOB_KINDS:
        raise dg.Failure(description=f"this run's Dagster job carries no {RUN_KIND} tag: give context.job_id",
                         allow_retries=False)
    record, created = jobs.create(job.tenant_id, kind=kind, request={"launched_from": "dagster", "dagster_run_id": run.run_id},
                                  submitted_by=job.requested_by, model_name=model_name,
                                  idempotency_key=f"dagster-run-{run.run_id}")
    if created:
        jobs.record_run_state(record.job_id, status="running", dagster_run_id=run.run_id, started_at=utcnow())
        context.log.info(f"registered as job {record.job_id} of tenant {job.tenant_id}")
    return job.model_copy(update={"job_id": record.job_id})
