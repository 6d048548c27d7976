"""Dependencies of the deployments API: ``DeploymentServiceDep``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from serving_api.deployments.service import DeploymentService


async def get_deployment_service(request: Request) -> DeploymentService:
    return request.app.state.deployment_service


DeploymentServiceDep = Annotated[DeploymentService, Depends(get_deployment_service)]
