"""Request and response bodies of deployments (``/api/v1/deployments``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, model_validator

from resources.jobs.limits import (
    DEFAULT_REPLICA_CPUS,
    MAX_REPLICA_CPUS,
    MAX_REPLICA_GPUS,
    MAX_REPLICA_MEMORY_GB,
    MAX_REPLICAS,
)
from resources.vocabulary import Runtime
from serving_api.common_schemas import StrictModel


class Autoscaling(StrictModel):
    """Ray Serve's autoscaling: ``target_requests_per_replica`` is its ``target_ongoing_requests``.
    ``max_replicas`` is required (Serve's default is 1: an autoscaling block without it could not
    scale up)."""

    min_replicas: int = Field(default=1, ge=0, le=MAX_REPLICAS)
    max_replicas: int = Field(ge=1, le=MAX_REPLICAS)
    target_requests_per_replica: float = Field(default=2.0, gt=0, le=1000)
    upscale_delay_s: float = Field(default=30.0, ge=0, le=3600)
    downscale_delay_s: float = Field(default=600.0, ge=0, le=86_400)

    @model_validator(mode="after")
    def _ordered(self):
        if self.min_replicas > self.max_replicas:
            raise ValueError("autoscaling.min_replicas must not exceed autoscaling.max_replicas")
        return self


class ReplicaResources(StrictModel):
    """What each replica reserves on the cluster: ``cpu`` -> ``num_cpus``, ``memory_gb`` ->
    ``memory`` (bytes; a scheduling reservation, not a limit the process is held to), ``gpu`` ->
    ``num_gpus``."""

    cpu: float = Field(default=DEFAULT_REPLICA_CPUS, gt=0, le=MAX_REPLICA_CPUS)
    memory_gb: float | None = Field(default=None, gt=0, le=MAX_REPLICA_MEMORY_GB)
    gpu: float = Field(default=0, ge=0, le=MAX_REPLICA_GPUS)


class Canary(StrictModel):
    version: str = Field(min_length=1, max_length=64, description="semver or stage of the canary version")
    traffic_percent: float = Field(gt=0, lt=100)
    promote_after_minutes: float = Field(default=30, gt=0, le=7 * 24 * 60)
    max_error_rate_delta: float = Field(default=0.01, ge=0, le=1)
    max_p99_latency_ratio: float = Field(default=1.5, ge=1, le=100)


class DeploymentCreate(StrictModel):
    model_id: str = Field(min_length=1, max_length=64)
    version: str | None = Field(default=None, max_length=64, description="semver or stage; default production, else newest")
    runtime: Runtime = "ray_serve"
    num_replicas: int = Field(default=1, ge=1, le=MAX_REPLICAS,
                              description="replicas; with autoscaling, the replicas it starts with (within min..max)")
    autoscaling: Autoscaling | None = None
    resources: ReplicaResources = Field(default_factory=ReplicaResources)


class DeploymentUpdate(StrictModel):
    """Only the fields given change. ``version``: a rolling update of the stable version;
    ``canary``: start one (or ``null`` to end it, its traffic back to the stable version);
    ``autoscaling`` ``null``: fixed ``num_replicas``."""

    version: str | None = Field(default=None, max_length=64)
    num_replicas: int | None = Field(default=None, ge=1, le=MAX_REPLICAS)
    autoscaling: Autoscaling | None = None
    resources: ReplicaResources | None = None
    canary: Canary | None = None

    @model_validator(mode="after")
    def _something(self):
        if not self.model_fields_set:
            raise ValueError("give at least one of version, num_replicas, autoscaling, resources, canary")
        return self


class DeploymentEventView(BaseModel):
    at: datetime
    kind: str
    message: str
    details: dict[str, Any] | None = None


class VersionReplicas(BaseModel):
    version: str
    role: str  # stable | canary
    traffic_percent: float
    replicas_running: int
    replicas_target: int | None


class DeploymentView(BaseModel):
    deployment_id: str
    status: str
    reason: str | None = None
    model_id: str
    model_name: str
    version: str
    runtime: str
    num_replicas: int
    autoscaling: dict[str, Any] | None = None
    resources: dict[str, Any]
    canary: dict[str, Any] | None = None
    versions: list[VersionReplicas] = Field(default_factory=list)
    serve_status: str | None = None  # the application's status as Ray Serve reports it
    endpoint: dict[str, Any]
    generation: int
    applied_generation: int | None = None
    job_id: str | None = None  # the deploy_model job of the newest change
    events: list[DeploymentEventView] = Field(default_factory=list)
    created_at: datetime
    updated_at: datetime


class DeploymentAccepted(BaseModel):
    deployment_id: str
    status: str
    model_id: str
    version: str
    job_id: str


class DeploymentsPage(BaseModel):
    deployments: list[DeploymentView]
