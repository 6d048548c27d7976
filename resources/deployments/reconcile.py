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
- a canary that runs: judged by ``judge_canary`` (rolled back or promoted);
- the canary's application missing while its canary runs (a restart) or left after the canary
  ended: applied (a run restores or removes it); reported DEPLOY_FAILED or UNHEALTHY: the canary
  rolled back with Serve's message;
- Serve reporting the stable application DEPLOY_FAILED or UNHEALTHY (replicas that keep failing) while
  it should run: ``degraded`` with Serve's message, counted as a failure (so a deployment whose
  replicas keep failing ends ``failed``); RUNNING again: ``running``, the count reset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from resources.deployments.store import DeploymentRecord
from resources.deployments.traffic import SLOT_S, Traffic, slot_of

MAX_FAILED_APPLIES = 3
MIN_CANARY_REQUESTS = 20  # a canary is judged on no fewer of its own requests (and as many of the stable's)
MIN_LATENCY_REQUESTS = 100  # its p99 on no fewer (the p99 of 20 requests is their slowest: one hiccup)
Action = Literal["none", "apply", "delete", "remove", "observe", "rollback", "promote"]


@dataclass(frozen=True)
class Decision:
    action: Action
    status: str | None = None
    reason: str | None = None
    message: str | None = None
    failed: bool | None = None  # count a failure (True) or reset the count (False)
    figures: dict[str, Any] = field(default_factory=dict)


NOTHING = Decision("none")


def decide(record: DeploymentRecord, app: dict[str, Any] | None, *, run_in_flight: bool,
           canary_app: dict[str, Any] | None = None) -> Decision:
    """``app`` and ``canary_app``: the stable and the canary Serve applications as Serve reports them (None: absent)."""
    if run_in_flight:
        return NOTHING
    if record.status == "deleting":
        if app is None and canary_app is None:
            return Decision("remove", message="the Serve applications are gone")
        return Decision("delete", message="deleting the Serve applications")
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
    if record.canary_serving and canary_app is None:
        return Decision("apply", message=f"the canary's Serve application is missing (Ray restarted?): applying generation "
                                         f"{record.generation}")
    if not record.canary and canary_app is not None:
        return Decision("apply", message="a canary's Serve application is left after its canary ended: removing it")
    if record.canary_serving and str((canary_app or {}).get("status") or "") in ("DEPLOY_FAILED", "UNHEALTHY"):
        return Decision("rollback", message=(
            f"canary {record.canary['version']} rolled back: Ray Serve reports its application "
            f"{canary_app['status']}: {_messages(canary_app)}")[:2000], figures={"serve_status": canary_app["status"]})
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


def canary_window_start(canary: dict[str, Any]) -> datetime | None:
    """The second whole slot (``SLOT_S``) after the canary's application was reported running (``running_at``,
    set by the run that applied it, when the API starts sending it its share): the first requests
    of a fresh replica warm it up, which is the platform's start-up, not the canary's latency.
    None until it runs."""
    from datetime import timedelta

    if not canary.get("running_at"):
        return None
    return slot_of(datetime.fromisoformat(canary["running_at"])) + timedelta(seconds=2 * SLOT_S)


def judge_canary(record: DeploymentRecord, traffic: dict[tuple[str, str], Traffic], now: datetime) -> Decision:
    """A running canary against the stable version over the same window (the whole slots since its
    application ran, ``canary_window_start``): rolled back (traffic to the stable version, the figures in the event) when its error
    rate exceeds the stable's by more than ``max_error_rate_delta`` or its p99 latency is more than
    ``max_p99_latency_ratio`` times the stable's (judged once both sides have ``MIN_LATENCY_REQUESTS``,
    and beyond the histogram's resolution); promoted (a rolling update of the stable version
    to it) once ``promote_after_minutes`` passed cleanly. Both need ``MIN_CANARY_REQUESTS`` of the
    canary's own requests (and as many of the stable's for the comparison); before that, nothing."""
    canary = record.canary
    if not canary or record.status != "running" or record.applied_generation != record.generation:
        return NOTHING
    window_start = canary_window_start(canary)
    if window_start is None:
        return NOTHING
    mine = traffic.get(("canary", canary["version"]), Traffic())
    stable = traffic.get(("stable", record.version), Traffic())
    figures = {
        "canary": {"version": canary["version"], "requests": mine.requests, "errors": mine.errors,
                   "error_rate": round(mine.error_rate, 4), "p99_ms": mine.quantile_ms(0.99)},
        "stable": {"version": record.version, "requests": stable.requests, "errors": stable.errors,
                   "error_rate": round(stable.error_rate, 4), "p99_ms": stable.quantile_ms(0.99)},
        "limits": {"max_error_rate_delta": canary["max_error_rate_delta"],
                   "max_p99_latency_ratio": canary["max_p99_latency_ratio"]},
        "window_start": window_start.isoformat(),
    }
    if mine.requests < MIN_CANARY_REQUESTS or stable.requests < MIN_CANARY_REQUESTS:
        return NOTHING
    delta = mine.error_rate - stable.error_rate
    if delta > float(canary["max_error_rate_delta"]):
        return Decision("rollback", figures=figures, message=(
            f"canary {canary['version']} rolled back: error rate {mine.error_rate:.2%} vs stable {stable.error_rate:.2%} "
            f"(+{delta:.2%} > {float(canary['max_error_rate_delta']):.2%}) over {mine.requests} canary requests"))
    mine_p99, stable_p99 = mine.quantile_ms(0.99), stable.quantile_ms(0.99)
    latency_judged = min(mine.requests, stable.requests) >= MIN_LATENCY_REQUESTS
    # certainly slower: the lower edge of the canary's p99 bucket against the upper edge of the stable's,
    # so that a p99 one bucket up (the buckets are ~1.5x apart) is not a regression by itself
    ratio = (mine.quantile_floor_ms(0.99) or 0.0) / stable_p99 if latency_judged and stable_p99 else 0.0
    if ratio > float(canary["max_p99_latency_ratio"]):
        return Decision("rollback", figures=figures, message=(
            f"canary {canary['version']} rolled back: p99 latency {mine_p99:g} ms vs stable {stable_p99:g} ms "
            f"(at least x{ratio:.2f} > x{float(canary['max_p99_latency_ratio']):g}) over {mine.requests} canary requests"))
    if (now - datetime.fromisoformat(canary["running_at"])).total_seconds() >= float(canary["promote_after_minutes"]) * 60:
        latency = (f"p99 {mine_p99:g} ms (stable {stable_p99:g} ms)" if latency_judged
                   else f"p99 not judged (fewer than {MIN_LATENCY_REQUESTS} requests)")
        return Decision("promote", figures=figures, message=(
            f"canary {canary['version']} promoted after {float(canary['promote_after_minutes']):g} min: error rate "
            f"{mine.error_rate:.2%} (stable {stable.error_rate:.2%}), {latency} over {mine.requests} canary requests"))
    return NOTHING
