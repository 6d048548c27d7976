"""Batch prediction requests: every check that answers before anything is launched, the run
config of the ``batch_scoring`` job, and the completion estimate.

Checks, in order: the model and version (404), the input path under the data-access policy (400)
holding parquet (400 when missing), its columns against the version's signature (400 naming
them), ``keep_columns`` present (400), the output path allowed (400), apart from the input (400)
and free unless ``overwrite`` (409 OUTPUT_EXISTS). Rows come from the parquet footers only.

``estimated_completion``: the job's submission plus start-up plus rows over scoring throughput,
both the median of the tenant's last succeeded batch jobs (start-up: from a job's submission to
its first scored rows written, so the queue, the run's launch, the model load and Ray Data's
start are in it; throughput: the rows written after the first block over the time they took).
Before there is one: ``DEFAULT_STARTUP_S`` and ``DEFAULT_THROUGHPUT_ROWS_PER_S``, measured by
``benchmarks/batch_scoring.py`` on the 2-core machine. While the job scores, the remaining rows
over its own throughput so far.
"""

from __future__ import annotations

import asyncio
import statistics
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from resources.infra.state_db import utcnow
from resources.jobs.records import IdempotencyConflict
from resources.jobs.specs import BATCH_SCORING_JOB, BatchScoringConfig, run_config

if TYPE_CHECKING:
    from resources.jobs.records import JobRecord
    from serving_api.auth import Principal
    from serving_api.batch.schemas import BatchCreate
    from serving_api.jobs.service import JobService
    from serving_api.online.cache import ModelCache

KIND = "batch_prediction"
# benchmarks/batch_scoring.py on the 2-core VM: submission to first rows 14-22 s; after start-up
# RandomForest(100 trees) 184-207k rows/s, LogisticRegression 533-785k rows/s (a heavier model is slower)
DEFAULT_THROUGHPUT_ROWS_PER_S = 100_000.0
DEFAULT_STARTUP_S = 20.0
HISTORY = 5  # earlier jobs the estimate takes its medians from


async def submit_batch(service: JobService, cache: ModelCache, principal: Principal, body: BatchCreate,
                       idempotency_key: str | None) -> tuple[JobRecord, dict[str, Any]]:
    tenant = principal.tenant_id
    sent = body.model_dump(mode="json")
    if idempotency_key is not None:  # a retry: its job, before checks that its own output would now fail
        earlier = await asyncio.to_thread(service.jobs.by_key, tenant, KIND, idempotency_key)
        if earlier is not None:
            if {name: earlier.request.get(name) for name in sent} != sent:
                raise IdempotencyConflict("this Idempotency-Key was used with a different request", {"job_id": earlier.job_id})
            return await asyncio.to_thread(service.refresh, earlier), {"rows": int(earlier.request.get("rows_total") or 0)}
    resolved = await asyncio.to_thread(service.registry.resolve_version, tenant, body.model_id, body.version)
    model = (await cache.get(tenant, body.model_id, resolved.version)).model
    facts = await asyncio.to_thread(check_paths, service, tenant, body, model.features)
    request = {**sent, "resolved_version": resolved.version, "rows_total": facts["rows"]}
    config = {"model_id": body.model_id, "version": resolved.version, "input_path": body.input_path,
              "output_path": body.output_path, "batch_size": body.batch_size, "keep_columns": body.keep_columns,
              "on_invalid": body.on_invalid, "overwrite": body.overwrite}
    record = await asyncio.to_thread(
        service.submit, principal, kind=KIND, job_name=BATCH_SCORING_JOB, model_name=model.name, request=request,
        idempotency_key=idempotency_key,
        run_config=lambda ctx: run_config(batch_predictions=BatchScoringConfig(context=ctx, **config)),
    )
    return record, facts


def check_paths(service: JobService, tenant: str, body: BatchCreate, features: list) -> dict[str, Any]:
    """The input's rows and kept columns, or the 4xx that stops the request (blocking)."""
    from mlservice.inference.batch_inputs import check_batch_input

    checked = check_batch_input(service.policy, tenant, input_path=body.input_path, output_path=body.output_path,
                                overwrite=body.overwrite, keep_columns=body.keep_columns, features=features)
    return {"rows": checked.rows, "files": len(checked.files), "keep_columns": checked.keep_columns}


def rates(service: JobService, tenant: str) -> tuple[float, float]:
    """(start-up seconds, rows per second) from the tenant's last succeeded batch jobs, else the defaults."""
    done = service.jobs.list(tenant, kind=KIND, status="succeeded", limit=HISTORY)
    speeds = [float(r.result.get("scoring_rows_per_s") or r.result["throughput_rows_per_s"]) for r in done
              if r.result.get("scoring_rows_per_s") or r.result.get("throughput_rows_per_s")]
    startups = [max(0.0, (datetime.fromisoformat(r.result["first_rows_at"]) - r.created_at).total_seconds()) for r in done
                if r.result.get("first_rows_at")]
    return (statistics.median(startups) if startups else DEFAULT_STARTUP_S,
            statistics.median(speeds) if speeds else DEFAULT_THROUGHPUT_ROWS_PER_S)


def estimated_completion(record: JobRecord, rows_total: int, startup_s: float, rows_per_s: float,
                         now: datetime | None = None) -> datetime | None:
    """When the job should end: its end once it ended, else from its own progress while it scores,
    else its submission plus start-up plus rows over throughput (not before now)."""
    now = now or utcnow()
    if record.terminal:
        return record.finished_at
    result = record.result
    done, speed = int(result.get("rows_done") or 0), result.get("throughput_rows_per_s")
    if done and speed:
        return now + timedelta(seconds=max(0, rows_total - done) / float(speed))
    begin = record.created_at or now
    return max(now, begin + timedelta(seconds=startup_s + rows_total / max(rows_per_s, 1.0)))

