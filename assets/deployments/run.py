"""One ``deploy_model`` run: the deployment's desired state, read when the run starts, applied to
Ray Serve, and what Serve then reports written back (status, reason, event, applied generation).

- ``delete`` (or a deployment marked ``deleting``): both applications deleted, then the record.
- ``apply``: the stable application, then the canary's (``serve_app.ensure``: an application that
  already runs as desired is left alone); a canary application left from an ended canary is
  deleted. RUNNING -> ``running`` (unless a newer change came in the meantime: it stays
  ``updating`` for that change's run); the stable application DEPLOY_FAILED or not RUNNING within
  ``deploy_timeout_s`` -> ``failed`` when nothing of it ever ran, else ``degraded`` (Serve keeps
  the replicas of the previous state serving), with Serve's message as the reason; the failed
  apply is counted (the reconciler gives up after a few). A canary whose replicas do not run is
  rolled back at once (event with Serve's message): it never took traffic.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from resources.errors import DomainError

if TYPE_CHECKING:
    from mlservice.config.settings import Settings
    from resources.dagster_resources import RayCluster
    from resources.deployments.store import DeploymentRecord, DeploymentStore
    from resources.jobs.specs import DeploymentConfig

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
    apps = ray_cluster.serve_applications()
    if config.action == "delete" or record.status == "deleting":
        for role in ("canary", "stable"):
            if record.app_of(role) in apps:
                serve_app.delete(record.app_of(role))
                log(f"Serve application {record.app_of(role)} deleted")
        store.remove(record.deployment_id)
        return {"deployment_id": record.deployment_id, "outcome": "deleted"}
    generation = record.generation
    log(f"applying generation {generation} of {record.deployment_id}: version {record.version}, spec {record.spec}, "
        f"canary {record.canary}")

    def ensure(role: str) -> Any:
        try:
            return serve_app.ensure(record, role, apps.get(record.app_of(role)), explain_max_cost=settings.explain_max_cost,
                                    timeout_s=settings.deploy_timeout_s, log=log)
        except (DomainError, ValueError, TypeError, RuntimeError) as exc:  # Serve refused the application itself
            return serve_app.Applied("DEPLOY_FAILED", f"{type(exc).__name__}: {exc}"[:2000], 0.0)

    applied = ensure("stable")
    result = {"deployment_id": record.deployment_id, "generation": generation, "serve_status": applied.status,
              "seconds": round(applied.seconds, 3)}
    if applied.status != "RUNNING":
        never_ran = record.applied_generation is None
        status = "failed" if never_ran else "degraded"
        reason = (f"Ray Serve did not run generation {generation}: {applied.message}" if never_ran else
                  f"the change to generation {generation} did not roll out ({applied.message}); the replicas of generation "
                  f"{record.applied_generation} keep serving")
        store.observe(record.deployment_id, status=status, reason=reason[:2000], failed=True, event="apply_failed",
                      message=reason[:2000], details={"serve_status": applied.status})
        raise DeploymentFailed(reason, {**result, "outcome": status})
    canary_note = ""
    if record.canary:
        canary = ensure("canary")
        if canary.status != "RUNNING":
            return _canary_failed(record, canary, store, result, log)
        canary_note = f", canary {record.canary['version']} at {record.canary['traffic_percent']:g}%"
        result["canary_seconds"] = round(canary.seconds, 3)
    elif record.app_of("canary") in apps:  # the canary ended (promoted or rolled back): its application goes
        serve_app.delete(record.app_of("canary"))
        log(f"Serve application {record.app_of('canary')} deleted")
    from resources.infra.state_db import utcnow

    current = store.find(record.deployment_id)
    newer = current is not None and current.generation > generation
    canary_start = {}
    if not newer and record.canary and not record.canary.get("running_at"):
        canary_start = {"canary": {**record.canary, "running_at": utcnow().isoformat()}}  # its share of traffic starts
    store.observe(record.deployment_id, status="updating" if newer else "running", applied_generation=generation,
                  failed=False, event="running", **canary_start,
                  message=f"generation {generation} running on Ray Serve (version {record.version}{canary_note})"
                          + ("" if applied.unchanged else f"; stable replicas rolled in {applied.seconds:.1f} s"))
    return {**result, "outcome": "running"}


def _canary_failed(record: DeploymentRecord, canary: Any, store: DeploymentStore, result: dict[str, Any],
                   log: Callable[[str], None]) -> dict[str, Any]:
    """A canary whose replicas did not start is rolled back here: it never took traffic, the stable
    version serves on, and the next generation (without the canary) is what is applied."""
    from assets.deployments import serve_app

    message = (f"canary {record.canary['version']} rolled back: its replicas did not run on Ray Serve "
               f"({canary.status}: {canary.message})")[:2000]
    log(message)
    try:
        serve_app.delete(record.app_of("canary"))
    except Exception as exc:  # the reconciler deletes a leftover canary application
        log(f"the canary's application was not deleted: {exc}")
    try:
        changed = store.change(record.tenant_id, record.deployment_id, status="running", event="canary_rolled_back",
                               message=message, details={"serve_status": canary.status}, canary=None)
    except DomainError as exc:  # changed meanwhile: the newer generation's run decides
        log(f"canary not settled: {exc.message}")
        return {**result, "outcome": "canary_failed"}
    if changed.generation == record.generation + 1:  # nothing else changed meanwhile: this state is what runs
        store.observe(record.deployment_id, status="running", applied_generation=changed.generation, failed=False,
                      event="running", message=f"generation {changed.generation} running on Ray Serve (version {record.version})")
    return {**result, "outcome": "canary_rolled_back"}
