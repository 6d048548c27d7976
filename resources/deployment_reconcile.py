"""What the deployment reconciler does with one deployment, given what Ray Serve reports.

Pure: the sensor (``pipelines/deployment_reconciler.py``) reads the desired state, Serve's
applications (the dashboard's REST API) and which deployments have a ``deploy_model`` run in
flight, and acts on each ``Decision``:

- a deployment with a run in flight: nothing (the run decides);
- ``deleting``: its application deleted (a run), or, when Serve has none, the record removed;
- applies that failed ``MAX_FAILED_APPLIES`` times in a row: ``failed`` with the last reason, and
  no more runs until the next change;
- its application missing (Ray restarted, the platform came back) or a change whose run ended
  without applying it: applied again (a run);
- Serve reporting the application DEPLOY_FAILED or UNHEALTHY (replicas that keep failing) while
  it should run: ``degraded`` with Serve's message, counted as a failure (so a deployment whose
  replicas keep failing ends ``failed``); RUNNING again: ``running``, the count reset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from resources.deployments import DeploymentRecord

MAX_FAILED_APPLIES = 3
Action = Literal["none", "apply", "delete", "remove", "observe"]


@dataclass(frozen=True)
class Decision:
    action: Action
    status: str | None = None
    reason: str | None = None
    message: str | None = None
    failed: bool | None = None  # count a failure (True) or reset the count (False)


NOTHING = Decision("none")


def decide(record: DeploymentRecord, app: dict[str, Any] | None, *, run_in_flight: bool) -> Decision:
    if run_in_flight:
        return NOTHING
    if record.status == "deleting":
        if app is None:
            return Decision("remove", message="the Serve application is gone")
        return Decision("delete", message="deleting the Serve application")
    if record.status == "failed":
        return NOTHING  # a change (PATCH) tries again
    if record.failures >= MAX_FAILED_APPLIES:
        reason = f"gave up after {record.failures} failed attempts: {record.reason or 'no reason recorded'}"
        return Decision("observe", status="failed", reason=reason[:2000], message=reason[:2000])
    if app is None:
        what = "missing (Ray restarted?)" if record.applied_generation is not None else "not there yet"
        return Decision("apply", message=f"the Serve application is {what}: applying generation {record.generation}")
    if record.applied_generation != record.generation:
        return Decision("apply", message=f"generation {record.generation} was not applied: applying it")
    serve_status = str(app.get("status") or "")
    if serve_status in ("DEPLOY_FAILED", "UNHEALTHY"):
        reason = f"Ray Serve reports the application {serve_status}: {_messages(app)}"[:2000]
        return Decision("observe", status="degraded", reason=reason, message=reason, failed=True)
    if serve_status == "RUNNING" and record.status in ("degraded", "deploying", "updating"):
        return Decision("observe", status="running", message="Ray Serve reports the application running again", failed=False)
    return NOTHING


def _messages(app: dict[str, Any]) -> str:
    parts = [str(app.get("message") or "")]
    for name, deployment in (app.get("deployments") or {}).items():
        if deployment.get("message"):
            parts.append(f"{name}: {deployment['message']}")
    return "; ".join(p for p in parts if p) or "no message"
