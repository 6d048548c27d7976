"""The read and cancel routes that every job kind's router shares (list, get, cancel)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from resources.jobs.records import JOB_ID_PATTERN, JobRecord
from resources.vocabulary import JobStatus
from serving_api.deps import JobsReader, JobsWriter
from serving_api.jobs.deps import JobServiceDep
from serving_api.jobs.schemas import JobsPublic
from serving_api.jobs.service import JobService
from serving_api.jobs.views import jobs_page

# a list's cursor: the last job id of the previous page (anything else is 400)
JobCursor = Annotated[str | None, Query(pattern=JOB_ID_PATTERN, description="the last job id of the previous page")]


def add_job_routes(router: APIRouter, *, kind: str, view: Callable[[JobService, JobRecord], BaseModel], model: type[BaseModel]) -> None:
    @router.get("", response_model=JobsPublic, name=f"list_{kind}")
    def list_jobs(
        principal: JobsReader, service: JobServiceDep, status: JobStatus | None = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 20, cursor: JobCursor = None,
    ) -> JobsPublic:
        return jobs_page(service, principal.tenant_id, kind=kind, status=status, limit=limit, cursor=cursor)

    @router.get("/{job_id}", response_model=model, name=f"get_{kind}")
    def get_job(job_id: str, principal: JobsReader, service: JobServiceDep):
        return view(service, service.get(principal.tenant_id, job_id, kind))

    @router.post("/{job_id}/cancel", response_model=model, name=f"cancel_{kind}")
    def cancel_job(job_id: str, principal: JobsWriter, service: JobServiceDep):
        return view(service, service.cancel(principal.tenant_id, job_id, kind))
