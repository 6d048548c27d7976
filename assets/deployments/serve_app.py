"""A deployment's desired state as Ray Serve applications, applied and watched from a driver.

A deployment is one application per role (``resources.deployments.store.app_name``): ``stable`` (the
version's replicas, with the deployment's replicas or autoscaling and resources,
``resources.deployments.serve_options``) and, while a canary runs, ``canary`` (one replica of the canary
version with the same resources). Each application's only deployment is its ingress, the model
replica itself: a request crosses Serve's proxy and one replica, no router hop. The API splits the
traffic between the two routes and counts what each answered (``serving_api.predictions.deployed``).

Why two applications: on Ray 2.60 every ``serve.run`` rolls every replica of the application, even
for a new replica count (measured), and an application whose ingress changes answers 503 until the
new ingress runs. Apart, a canary that starts or ends never touches the stable replicas, and an
application whose desired state did not change is not re-run at all: its ingress carries the
state's fingerprint as ``user_config``, which Serve's REST API reports back. With
``max_surge_percent`` 100 the new replicas of a roll start before the old ones stop, so a roll fails
no request, and a roll whose replicas cannot start leaves the old ones serving (``DEPLOY_FAILED``).

Replicas get the platform's settings through their runtime environment (``MLSERVICE_*``
variables but the JWT keys, ``AWS_*``, ``MLFLOW_*``): they read the registry, the artifact store
and the state database as the run worker does.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from resources.deployments.serve_options import canary_replica_spec, deployment_options

if TYPE_CHECKING:
    from resources.deployments.store import DeploymentRecord

ENV_PREFIXES = ("MLSERVICE_", "AWS_", "MLFLOW_")
ENV_WITHHELD = ("MLSERVICE_JWT_",)  # replicas verify no tokens: the API did


def replica_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    environ = dict(os.environ if environ is None else environ)
    return {name: value for name, value in environ.items()
            if name.startswith(ENV_PREFIXES) and not name.startswith(ENV_WITHHELD)}


def role_spec(record: DeploymentRecord, role: str) -> dict[str, Any]:
    return canary_replica_spec(record.spec) if role == "canary" else record.spec


def fingerprint(record: DeploymentRecord, role: str, explain_max_cost: int) -> str:
    """What the role's application runs (model, version, Serve options, explanation bound), hashed."""
    state = {"model_id": record.model_id, "version": record.version_of(role), "role": role,
             "options": deployment_options(role_spec(record, role)), "explain_max_cost": explain_max_cost}
    return hashlib.sha256(json.dumps(state, sort_keys=True, default=str).encode()).hexdigest()[:32]


def running_fingerprint(app: dict[str, Any] | None, role: str) -> str | None:
    """The fingerprint a running application's ingress carries (Serve's REST ``user_config``)."""
    deployment = ((app or {}).get("deployments") or {}).get(role) or {}
    user_config = (deployment.get("deployment_config") or {}).get("user_config") or {}
    return user_config.get("fingerprint") if isinstance(user_config, dict) else None


def build_app(record: DeploymentRecord, role: str, *, explain_max_cost: int, env: dict[str, str] | None = None) -> Any:
    from ray import serve

    from assets.deployments.replica import ModelReplica

    options = deployment_options(role_spec(record, role))
    options["ray_actor_options"] = {**options["ray_actor_options"], "runtime_env": {"env_vars": replica_env(env)}}
    options["user_config"] = {"fingerprint": fingerprint(record, role, explain_max_cost)}
    return serve.deployment(ModelReplica, name=role, **options).bind(
        record.tenant_id, record.model_id, record.version_of(role), role, explain_max_cost)


@dataclass
class Applied:
    status: str  # RUNNING | DEPLOY_FAILED | DEPLOYING (timed out) | ...
    message: str
    seconds: float
    unchanged: bool = False  # already running as desired: not re-run


def start_serve(host: str, port: int) -> None:
    """Serve's controller and HTTP proxy on ``host:port`` (idempotent: a running Serve is kept)."""
    from ray import serve

    serve.start(http_options={"host": host, "port": port})


def ensure(record: DeploymentRecord, role: str, current: dict[str, Any] | None, *, explain_max_cost: int,
           timeout_s: float, poll_s: float = 1.0, log: Any = lambda _m: None) -> Applied:
    """The role's application as desired: left alone when Serve runs it with the same fingerprint,
    else upserted and waited for until RUNNING or DEPLOY_FAILED (or ``timeout_s``)."""
    name = record.app_of(role)
    if (current or {}).get("status") == "RUNNING" and running_fingerprint(current, role) == fingerprint(record, role, explain_max_cost):
        log(f"Serve application {name} already runs {role} version {record.version_of(role)} as desired: left alone")
        return Applied("RUNNING", "unchanged", 0.0, unchanged=True)
    from ray import serve

    started = time.perf_counter()
    serve._run(build_app(record, role, explain_max_cost=explain_max_cost), _blocking=False, name=name,
               route_prefix=record.route_of(role))
    last = ""
    while True:
        status = serve.status().applications.get(name)
        raw = getattr(status, "status", "NOT_STARTED")
        state = str(getattr(raw, "value", raw))
        message = _messages(status)
        if state != last:
            log(f"Serve application {name}: {state} {message[:300]}")
            last = state
        if state in ("RUNNING", "DEPLOY_FAILED"):
            return Applied(state, message, time.perf_counter() - started)
        if time.perf_counter() - started > timeout_s:
            return Applied(state, message or f"not running after {timeout_s:g} s", time.perf_counter() - started)
        time.sleep(poll_s)


def _messages(status: Any) -> str:
    """The application's message and its deployments' (where Serve puts a replica's error, e.g. why its constructor failed)."""
    parts = [getattr(status, "message", "") or ""]
    for name, deployment in (getattr(status, "deployments", None) or {}).items():
        if getattr(deployment, "message", ""):
            parts.append(f"{name}: {deployment.message}")
    return "; ".join(p for p in parts if p)[:2000]


def delete(app_name: str) -> None:
    from ray import serve

    serve.delete(app_name, _blocking=True)
