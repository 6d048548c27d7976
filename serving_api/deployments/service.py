"""Deployments on Ray Serve: the API's side. The API stores the desired state and launches a
``deploy_model`` run for every change (the run is the Serve driver); it never becomes a Ray
driver itself, and reads what Serve reports over HTTP from the Ray dashboard.

Checks before anything is stored, in order: the model and version (404), Ray reachable (503
RAY_UNAVAILABLE), a GPU when asked for (400), the replicas the change starts with fitting the
cluster (400 naming what is available), the tenant's ``deployments`` quota (409 QUOTA_EXCEEDED),
one deployment per model version (409). A run that could
not be launched removes what this request stored (a new deployment) or leaves the change recorded
for the reconciler to apply (a change).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from resources.deployments.serve_options import canary_replica_spec, check_fits, initial_replicas
from resources.deployments.store import DeploymentRecord, DeploymentStore
from resources.errors import DomainError, InvalidRequest, RayUnavailable
from resources.jobs.specs import DEPLOY_JOB, DeploymentConfig, run_config
from serving_api.deployments.schemas import DeploymentView

HELD_SCAN = 1000  # deployments read for the cluster's reservations (quotas keep the real number far below)

if TYPE_CHECKING:
    from resources.jobs.records import JobRecord
    from serving_api.auth import Principal
    from serving_api.deployments.schemas import DeploymentCreate, DeploymentUpdate
    from serving_api.jobs.service import JobService

KIND = "deployment"


class DeploymentConflict(DomainError):
    code = "DEPLOYMENT_CONFLICT"


class DeploymentService:
    def __init__(self, store: DeploymentStore, jobs: JobService) -> None:
        self.store, self.jobs = store, jobs
        self.ray, self.registry = jobs.ray, jobs.registry

    # -- changes ------------------------------------------------------------------------------------
    def create(self, principal: Principal, body: DeploymentCreate) -> tuple[DeploymentRecord, JobRecord]:
        tenant = principal.tenant_id
        resolved = self.registry.resolve_version(tenant, body.model_id, body.version)
        self.ray.ensure_reachable()
        spec = {"num_replicas": body.num_replicas, "resources": body.resources.model_dump(),
                "autoscaling": body.autoscaling.model_dump() if body.autoscaling else None}
        fit = check_fits(spec, self.ray.total_resources(), held=self._held())
        if self.jobs.quotas is not None:  # each deployment holds replicas: one tenant cannot take the cluster
            self.jobs.quotas.check(tenant, "deployments", lambda _: self.store.count(tenant))
        record = self.store.create(tenant, model_id=body.model_id, model_name=resolved.name, version=resolved.version,
                                   runtime=body.runtime, spec=spec, created_by=principal.subject)
        for warning in fit.warnings:
            self.store.observe(record.deployment_id, status=record.status, event="warning", message=warning)
        try:
            job = self._launch(principal, record, "apply")
        except Exception:
            self.store.remove(record.deployment_id)  # nothing was started: the same request may be sent again
            raise
        return self.store.get(tenant, record.deployment_id), job

    def update(self, principal: Principal, deployment_id: str, body: DeploymentUpdate) -> tuple[DeploymentRecord, JobRecord]:
        tenant = principal.tenant_id
        record = self.store.get(tenant, deployment_id)
        if record.status == "deleting":
            raise DeploymentConflict("the deployment is being deleted", {"deployment_id": deployment_id})
        self.ray.ensure_reachable()
        given = body.model_fields_set
        desired: dict[str, Any] = {}
        changes: list[str] = []
        if "version" in given and body.version is not None:
            version = self.registry.resolve_version(tenant, record.model_id, body.version).version
            if version != record.version:
                desired["version"] = version
                changes.append(f"version {record.version} -> {version} (rolling update)")
        spec = dict(record.spec)
        if "num_replicas" in given and body.num_replicas is not None:
            spec["num_replicas"] = body.num_replicas
        if "autoscaling" in given:
            spec["autoscaling"] = body.autoscaling.model_dump() if body.autoscaling else None
        if "resources" in given and body.resources is not None:
            spec["resources"] = body.resources.model_dump()
        if spec != record.spec:
            desired["spec"] = spec
            changes.append(_spec_change(record.spec, spec))
        canary = record.canary
        if "canary" in given:
            canary = self._canary(tenant, record, body, desired.get("version", record.version))
            if canary != record.canary:
                desired["canary"] = canary
                changes.append(f"canary {canary['version']} at {canary['traffic_percent']:g}%" if canary else "canary ended")
        if not desired:
            raise InvalidRequest("nothing to change: the deployment already has that state", {"deployment_id": deployment_id})
        also = [canary_replica_spec(spec)] if canary else []
        # against the cluster's totals: the change replaces the deployment's own replicas
        fit = check_fits(spec, self.ray.total_resources(), also=also, held=self._held(deployment_id))
        changed = self.store.change(tenant, deployment_id, status="updating", event="updated", message="; ".join(changes),
                                    details={"requested_by": principal.subject}, **desired)
        for warning in fit.warnings:
            self.store.observe(deployment_id, status=changed.status, event="warning", message=warning)
        return self.store.get(tenant, deployment_id), self._launch(principal, changed, "apply")

    def delete(self, principal: Principal, deployment_id: str) -> tuple[DeploymentRecord, JobRecord]:
        self.store.get(principal.tenant_id, deployment_id)
        self.ray.ensure_reachable()
        record = self.store.mark_deleting(principal.tenant_id, deployment_id)
        return record, self._launch(principal, record, "delete")

    def _held(self, excluding: str | None = None) -> list[dict[str, Any]]:
        """The replicas every other deployment keeps (any tenant's: they share the cluster), stable and
        canary; not those being deleted or failed."""
        held = []
        for record in self.store.list(None, limit=HELD_SCAN):
            if record.deployment_id == excluding or record.status in ("deleting", "failed"):
                continue
            held.append(record.spec)
            if record.canary:
                held.append(canary_replica_spec(record.spec))
        return held

    def _canary(self, tenant: str, record: DeploymentRecord, body: DeploymentUpdate, stable_version: str) -> dict[str, Any] | None:
        if body.canary is None:
            return None
        version = self.registry.resolve_version(tenant, record.model_id, body.canary.version).version
        if version == stable_version:
            raise InvalidRequest(f"the canary version {version} is the stable version; send a version other than {stable_version}",
                                 {"canary": {"version": body.canary.version}})
        from resources.infra.state_db import utcnow

        return {**body.canary.model_dump(), "version": version, "started_at": utcnow().isoformat()}

    def _launch(self, principal: Principal, record: DeploymentRecord, action: str) -> JobRecord:
        request = {"deployment_id": record.deployment_id, "action": action, "generation": record.generation}
        job = self.jobs.submit(
            principal, kind=KIND, job_name=DEPLOY_JOB, model_name=record.model_name, request=request, idempotency_key=None,
            deployment_id=record.deployment_id,
            run_config=lambda ctx: run_config(model_deployment=DeploymentConfig(
                context=ctx, deployment_id=record.deployment_id, action=action, generation=record.generation)),
        )
        self.store.observe(record.deployment_id, status=self.store.get(principal.tenant_id, record.deployment_id).status,
                           event="run_launched", message=f"{action} generation {record.generation}: job {job.job_id}",
                           details={"job_id": job.job_id, "dagster_run_id": job.dagster_run_id})
        return job

    # -- reads --------------------------------------------------------------------------------------
    def view(self, record: DeploymentRecord) -> DeploymentView:
        return deployment_view(record, self.serve_status())

    def serve_status(self) -> dict[str, dict[str, Any]]:
        try:
            return self.ray.serve_applications()
        except RayUnavailable:
            return {}

    def list(self, tenant_id: str, model_id: str | None = None) -> list[DeploymentView]:
        records = self.store.list(tenant_id, model_id=model_id)
        serve = self.serve_status() if records else {}
        return [deployment_view(r, serve) for r in records]


def _spec_change(before: dict[str, Any], after: dict[str, Any]) -> str:
    parts = []
    for key in ("num_replicas", "autoscaling", "resources"):
        if before.get(key) != after.get(key):
            parts.append(f"{key} {before.get(key)} -> {after.get(key)}")
    return "; ".join(parts)


def _running(deployment: dict[str, Any] | None) -> tuple[int, int | None]:
    if not deployment:
        return 0, None
    replicas = deployment.get("replicas") or []
    return sum(1 for r in replicas if r.get("state") == "RUNNING"), deployment.get("target_num_replicas")


def deployment_view(record: DeploymentRecord, apps: dict[str, dict[str, Any]]) -> DeploymentView:
    """The deployment as the API shows it: the desired state, the replicas Serve reports per
    version (stable and canary: ``apps``, Serve's applications by name), the traffic split (the
    canary takes its share once its application runs), the endpoint, the newest events."""
    serve = apps.get(record.app_name)
    canary_percent = float(record.canary["traffic_percent"]) if record.canary_serving else 0.0
    running, target = _running(((serve or {}).get("deployments") or {}).get("stable"))
    versions = [{"version": record.version, "role": "stable", "traffic_percent": 100.0 - canary_percent,
                 "replicas_running": running, "replicas_target": target}]
    if record.canary:
        running, target = _running(((apps.get(record.app_of("canary")) or {}).get("deployments") or {}).get("canary"))
        versions.append({"version": record.canary["version"], "role": "canary", "traffic_percent": canary_percent,
                         "replicas_running": running, "replicas_target": target})
    job_id = next((e.details.get("job_id") for e in record.events if e.kind == "run_launched" and e.details), None)
    return DeploymentView(
        deployment_id=record.deployment_id, status=record.status, reason=record.reason, model_id=record.model_id,
        model_name=record.model_name, version=record.version, runtime=record.runtime,
        num_replicas=initial_replicas(record.spec), autoscaling=record.spec.get("autoscaling"),
        resources=record.spec["resources"], canary=record.canary, versions=versions,
        serve_status=(serve or {}).get("status"),
        endpoint={"method": "POST", "path": "/api/v1/predictions",
                  "body": {"model_id": record.model_id, "deployment_id": record.deployment_id, "features": "{...}"},
                  "serve_route": record.route_prefix},
        generation=record.generation, applied_generation=record.applied_generation, job_id=job_id,
        events=[{"at": e.at, "kind": e.kind, "message": e.message, "details": e.details} for e in record.events],
        created_at=record.created_at, updated_at=record.updated_at,
    )
