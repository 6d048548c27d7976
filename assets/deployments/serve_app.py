"""A deployment's desired state as a Ray Serve application, applied and watched from a driver.

The application of a deployment: ``router`` (the ingress, a small fraction of a CPU) ->
``stable`` (the version's replicas, with the deployment's replicas or autoscaling and resources,
``resources.serve_options``) and, while a canary runs, ``canary`` (one replica of the canary
version with the same resources). ``serve.run`` upserts it by name, and on Ray 2.60 every upsert
rolls every replica of the application, even for a new replica count (measured); with
``max_surge_percent`` 100 the new replicas start before the old ones stop, so a roll fails no
request, and a roll whose replicas cannot start leaves the old ones serving (``DEPLOY_FAILED``).

Replicas get the platform's settings through their runtime environment (``MLSERVICE_*``
variables but the JWT keys, ``AWS_*``, ``MLFLOW_*``): they read the registry, the artifact store
and the state database as the run worker does.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from resources.serve_options import MAX_SURGE_PERCENT, canary_replica_spec, deployment_options

if TYPE_CHECKING:
    from resources.deployments import DeploymentRecord

ROUTER_CPUS = 0.05
ROUTER_MAX_ONGOING = 256
ENV_PREFIXES = ("MLSERVICE_", "AWS_", "MLFLOW_")
ENV_WITHHELD = ("MLSERVICE_JWT_",)  # replicas verify no tokens: the API did


def replica_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    environ = dict(os.environ if environ is None else environ)
    return {name: value for name, value in environ.items()
            if name.startswith(ENV_PREFIXES) and not name.startswith(ENV_WITHHELD)}


def build_app(record: DeploymentRecord, *, explain_max_cost: int, env: dict[str, str] | None = None) -> Any:
    from ray import serve

    from assets.deployments.replica import DeploymentRouter, ModelReplica

    runtime_env = {"env_vars": replica_env(env)}

    def replicas(name: str, spec: dict[str, Any], version: str) -> Any:
        options = deployment_options(spec)
        options["ray_actor_options"] = {**options["ray_actor_options"], "runtime_env": runtime_env}
        return serve.deployment(ModelReplica, name=name, **options).bind(
            record.tenant_id, record.model_id, version, name, explain_max_cost)

    stable = replicas("stable", record.spec, record.version)
    canary, canary_version, percent = None, "", 0.0
    if record.canary:
        canary_version = record.canary["version"]
        canary = replicas("canary", canary_replica_spec(record.spec), canary_version)
        percent = float(record.canary["traffic_percent"])
    router = serve.deployment(
        DeploymentRouter, name="router", num_replicas=1, max_ongoing_requests=ROUTER_MAX_ONGOING,
        max_surge_percent=MAX_SURGE_PERCENT, ray_actor_options={"num_cpus": ROUTER_CPUS, "runtime_env": runtime_env},
    )
    return router.bind(record.deployment_id, stable, record.version, canary, canary_version, percent)


@dataclass
class Applied:
    status: str  # RUNNING | DEPLOY_FAILED | DEPLOYING (timed out) | ...
    message: str
    seconds: float


def start_serve(host: str, port: int) -> None:
    """Serve's controller and HTTP proxy on ``host:port`` (idempotent: a running Serve is kept)."""
    from ray import serve

    serve.start(http_options={"host": host, "port": port})


def apply(record: DeploymentRecord, *, explain_max_cost: int, timeout_s: float, poll_s: float = 1.0,
          log: Any = lambda _m: None) -> Applied:
    """Upsert the application and wait until Serve reports it RUNNING or DEPLOY_FAILED (or ``timeout_s``)."""
    from ray import serve

    started = time.perf_counter()
    serve._run(build_app(record, explain_max_cost=explain_max_cost), _blocking=False, name=record.app_name,
               route_prefix=record.route_prefix)
    last = ""
    while True:
        status = serve.status().applications.get(record.app_name)
        raw = getattr(status, "status", "NOT_STARTED")
        state = str(getattr(raw, "value", raw))
        message = getattr(status, "message", "") or ""
        if state != last:
            log(f"Serve application {record.app_name}: {state} {message[:300]}")
            last = state
        if state in ("RUNNING", "DEPLOY_FAILED"):
            return Applied(state, message, time.perf_counter() - started)
        if time.perf_counter() - started > timeout_s:
            return Applied(state, message or f"not running after {timeout_s:g} s", time.perf_counter() - started)
        time.sleep(poll_s)


def delete(app_name: str) -> None:
    from ray import serve

    serve.delete(app_name, _blocking=True)
