"""/api/v1/predictions/batch: a parquet input scored by a model version on Ray Data, as a job.

Submitting takes ``predictions:write`` (the reference's scope); reading, listing and cancelling
the jobs take ``jobs:read`` / ``jobs:write`` like every job (also at ``/api/v1/jobs``).
"""

from __future__ import annotations

from fastapi import APIRouter

from serving_api.batch import service as batch_requests
from serving_api.batch.schemas import BatchAccepted, BatchCreate, BatchStatus
from serving_api.deps import IdempotencyKey, ModelCacheDep, PredictionsWriter
from serving_api.jobs.deps import JobServiceDep
from serving_api.jobs.per_kind import add_job_routes
from serving_api.jobs.views import batch_status
from serving_api.openapi import errors

router = APIRouter(prefix="/api/v1/predictions/batch", tags=["batch predictions"], responses=errors(404, 409, 422, 503))


@router.post("", status_code=202, response_model=BatchAccepted)
async def submit_batch(
    body: BatchCreate, principal: PredictionsWriter, service: JobServiceDep, cache: ModelCacheDep,
    idempotency_key: IdempotencyKey = None,
) -> BatchAccepted:
    import asyncio

    record, facts = await batch_requests.submit_batch(service, cache, principal, body, idempotency_key)
    startup_s, rows_per_s = await asyncio.to_thread(batch_requests.rates, service, principal.tenant_id)
    rows = int(record.request.get("rows_total", facts["rows"]))
    estimate = batch_requests.estimated_completion(record, rows, startup_s, rows_per_s)
    return BatchAccepted(job_id=record.job_id, status=record.status, estimated_completion=estimate,
                         model_id=body.model_id, version=record.request.get("resolved_version", ""), rows_total=rows)


add_job_routes(router, kind=batch_requests.KIND, view=batch_status, model=BatchStatus)
