"""One ``deploy_model`` run: the deployment's desired state, read when the run starts, applied to
Ray Serve, and what Serve then reports written back (status, reason, event, applied generation).

- ``delete`` (or a deployment marked ``deleting``): the application is deleted, then the record.
- ``apply``: the application upserted; RUNNING -> ``running`` (unless a newer change came in the
  meantime: it stays ``updating`` for that change's run); DEPLOY_FAILED or no RUNNING within
  ``deploy_timeout_s`` -> ``failed`` when nothing of it ever ran, else ``degraded`` (Serve keeps
  the replicas of the previous state serving), with Serve's message as the reason; the failed
  apply is counted (the reconciler gives up after a few).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from resources.errors import DomainError

if TYPE_CHECKING:
    from config.settings import Settings
    from resources.deployments import DeploymentStore
    from resources.job_specs import DeploymentConfig
    from resources.ray_cluster import RayCluster

SERVE_HOST = "127.0.0.1"  # Serve's proxy listens on loopback only: clients come through the API


class DeploymentFailed(Exception):
    def __init__(self, message: str, result: dict[str, Any]) -> None:
        super().__init__(message)
        self.result = result


def run_deployment(config: DeploymentConfig, store: DeploymentStore, ray_cluster: RayCluster, settings: Settings, *,
                   log: Callable[[str], None] = lambda _m: None) -> dict[str, Any]:
    from assets.deployments import serve_app

    record = store.find(config.deployment_id)
    if record is None or record.tenant_id != config.context.tenant_id:
        log(f"deployment {config.deployment_id} is gone: nothing to do")
        return {"deployment_id": config.deployment_id, "outcome": "gone"}
    ray_cluster.connect()
    serve_app.start_serve(SERVE_HOST, settings.serve_port)
    if config.action == "delete" or record.status == "deleting":
        serve_app.delete(record.app_name)
        store.remove(record.deployment_id)
        log(f"Serve application {record.app_name} deleted")
        return {"deployment_id": record.deployment_id, "outcome": "deleted"}
    generation = record.generation
    log(f"applying generation {generation} of {record.deployment_id}: version {record.version}, spec {record.spec}, "
        f"canary {record.canary}")
    try:
        applied = serve_app.apply(record, explain_max_cost=settings.explain_max_cost, timeout_s=settings.deploy_timeout_s,
                                  log=log)
    except (DomainError, ValueError, TypeError, RuntimeError) as exc:  # Serve refused the application itself
        applied = serve_app.Applied("DEPLOY_FAILED", f"{type(exc).__name__}: {exc}"[:2000], 0.0)
    result = {"deployment_id": record.deployment_id, "generation": generation, "serve_status": applied.status,
              "seconds": round(applied.seconds, 3)}
    if applied.status == "RUNNING":
        from resources.state_db import utcnow

        current = store.find(record.deployment_id)
        newer = current is not None and current.generation > generation
        canary = {}
        if not newer and record.canary and not record.canary.get("running_at"):
            canary = {"canary": {**record.canary, "running_at": utcnow().isoformat()}}  # the canary's window starts
        store.observe(record.deployment_id, status="updating" if newer else "running", applied_generation=generation,
                      failed=False, event="running", **canary,
                      message=f"generation {generation} running on Ray Serve (version {record.version}"
                              + (f", canary {record.canary['version']} at {record.canary['traffic_percent']:g}%" if record.canary else "")
                              + f") after {applied.seconds:.1f} s")
        return {**result, "outcome": "running"}
    never_ran = record.applied_generation is None
    status = "failed" if never_ran else "degraded"
    reason = (f"Ray Serve did not run generation {generation}: {applied.message}" if never_ran else
              f"the change to generation {generation} did not roll out ({applied.message}); the replicas of generation "
              f"{record.applied_generation} keep serving")
    store.observe(record.deployment_id, status=status, reason=reason[:2000], failed=True, event="apply_failed",
                  message=reason[:2000], details={"serve_status": applied.status})
    raise DeploymentFailed(reason, {**result, "outcome": status})
