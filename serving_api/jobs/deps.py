"""Dependencies of every job route: ``JobServiceDep``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from serving_api.jobs.service import JobService


async def get_job_service(request: Request) -> JobService:
    return request.app.state.job_service


JobServiceDep = Annotated[JobService, Depends(get_job_service)]
