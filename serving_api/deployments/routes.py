"""/api/v1/deployments: model versions served on Ray Serve.

Changes (``deployments:write``) answer 202 once the desired state is stored and its
``deploy_model`` run launched; the deployment's ``status`` and ``events`` say what happened.
Reads take ``deployments:write`` or ``models:read``. Another tenant's deployment is 404.
"""

from __future__ import annotations

from fastapi import APIRouter, Query

from serving_api.deployments.deps import DeploymentServiceDep
from serving_api.deployments.schemas import (
    DeploymentAccepted,
    DeploymentCreate,
    DeploymentsPage,
    DeploymentUpdate,
    DeploymentView,
)
from serving_api.deps import DeploymentsReader, DeploymentsWriter
from serving_api.openapi import errors

router = APIRouter(prefix="/api/v1/deployments", tags=["deployments"], responses=errors(404, 409, 503))


def _accepted(record, job) -> DeploymentAccepted:
    return DeploymentAccepted(deployment_id=record.deployment_id, status=record.status, model_id=record.model_id,
                              version=record.version, job_id=job.job_id)


@router.post("", status_code=202, response_model=DeploymentAccepted)
def create_deployment(body: DeploymentCreate, principal: DeploymentsWriter, service: DeploymentServiceDep) -> DeploymentAccepted:
    return _accepted(*service.create(principal, body))


@router.get("", response_model=DeploymentsPage)
def list_deployments(principal: DeploymentsReader, service: DeploymentServiceDep,
                     model_id: str | None = Query(default=None, pattern=r"^[0-9A-Za-z-]{1,64}$")) -> DeploymentsPage:
    return DeploymentsPage(deployments=service.list(principal.tenant_id, model_id))


@router.get("/{deployment_id}", response_model=DeploymentView)
def get_deployment(deployment_id: str, principal: DeploymentsReader, service: DeploymentServiceDep) -> DeploymentView:
    return service.view(service.store.get(principal.tenant_id, deployment_id))


@router.patch("/{deployment_id}", status_code=202, response_model=DeploymentAccepted)
def update_deployment(deployment_id: str, body: DeploymentUpdate, principal: DeploymentsWriter,
                      service: DeploymentServiceDep) -> DeploymentAccepted:
    return _accepted(*service.update(principal, deployment_id, body))


@router.delete("/{deployment_id}", status_code=202, response_model=DeploymentAccepted)
def delete_deployment(deployment_id: str, principal: DeploymentsWriter, service: DeploymentServiceDep) -> DeploymentAccepted:
    return _accepted(*service.delete(principal, deployment_id))
