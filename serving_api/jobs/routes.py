"""/api/v1/jobs: every job of any kind, with its Dagster run."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from resources.vocabulary import JobKind, JobStatus
from serving_api.deps import JobsReader
from serving_api.jobs.deps import JobServiceDep
from serving_api.jobs.per_kind import JobCursor
from serving_api.jobs.schemas import JobPublic, JobsPublic
from serving_api.jobs.views import jobs_page
from serving_api.openapi import errors

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"], responses=errors(404, 503))


@router.get("", response_model=JobsPublic)
def list_jobs(
    principal: JobsReader, service: JobServiceDep, kind: JobKind | None = None, status: JobStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20, cursor: JobCursor = None,
) -> JobsPublic:
    return jobs_page(service, principal.tenant_id, kind=kind, status=status, limit=limit, cursor=cursor)


@router.get("/{job_id}", response_model=JobPublic)
def get_job(job_id: str, principal: JobsReader, service: JobServiceDep) -> JobPublic:
    return JobPublic.model_validate(service.public(service.get(principal.tenant_id, job_id)))
