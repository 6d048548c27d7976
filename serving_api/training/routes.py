"""/api/v1/training: training jobs run as Dagster assets on Ray."""

from __future__ import annotations

from fastapi import APIRouter

from serving_api.deps import IdempotencyKey, JobsWriter
from serving_api.features.deps import FeatureStoreDep
from serving_api.jobs.deps import JobServiceDep
from serving_api.jobs.per_kind import add_job_routes
from serving_api.jobs.schemas import JobAccepted, TrainingCreate, TrainingStatus
from serving_api.jobs.views import training_status
from serving_api.openapi import errors
from serving_api.training import requests as job_requests

router = APIRouter(prefix="/api/v1/training", tags=["training"], responses=errors(404, 409, 503))
KIND = "training"


@router.post("", status_code=202, response_model=JobAccepted)
def submit_training(
    body: TrainingCreate, principal: JobsWriter, service: JobServiceDep, store: FeatureStoreDep,
    idempotency_key: IdempotencyKey = None,
) -> JobAccepted:
    record = job_requests.submit_training(service, store, principal, body, idempotency_key)
    return JobAccepted(job_id=record.job_id, status=record.status, model_name=record.model_name)


add_job_routes(router, kind=KIND, view=training_status, model=TrainingStatus)
