"""The reconciler's decision per deployment: a run in flight is left alone; a deleting deployment
is deleted (or removed once Serve has nothing); an application that is missing (Ray restarted) or
a change never applied is applied again; Serve's DEPLOY_FAILED / UNHEALTHY makes it degraded and
counts a failure, and after MAX_FAILED_APPLIES it is failed with the reason; RUNNING again heals."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from resources.deployments.reconcile import MAX_FAILED_APPLIES, decide
from resources.deployments.store import DeploymentRecord
from tests.utils.fakes import deployment_record

NOW = datetime(2026, 11, 28, tzinfo=UTC)
RUNNING_APP = {"status": "RUNNING", "deployments": {"stable": {"status": "HEALTHY", "message": ""}}}


def _record(**changes) -> DeploymentRecord:
    return deployment_record(**changes)


def test_a_run_in_flight_is_left_to_decide():
    assert decide(_record(status="deleting"), None, run_in_flight=True).action == "none"
    assert decide(_record(), None, run_in_flight=True).action == "none"


def test_deleting_deletes_the_application_then_removes_the_record():
    assert decide(_record(status="deleting"), RUNNING_APP, run_in_flight=False).action == "delete"
    assert decide(_record(status="deleting"), None, run_in_flight=False).action == "remove"


@pytest.mark.parametrize("status", ["running", "updating", "degraded", "deploying"])
def test_a_missing_application_is_applied_again(status):
    decision = decide(_record(status=status), None, run_in_flight=False)
    assert decision.action == "apply" and "generation 2" in decision.message


def test_a_change_that_was_never_applied_is_applied():
    decision = decide(_record(status="updating", generation=3), RUNNING_APP, run_in_flight=False)
    assert decision.action == "apply" and "generation 3" in decision.message


@pytest.mark.parametrize("serve_status", ["DEPLOY_FAILED", "UNHEALTHY"])
def test_failing_replicas_degrade_then_fail(serve_status):
    app = {"status": serve_status, "message": "", "deployments": {"stable": {"message": "replica crashed: boom"}}}
    decision = decide(_record(), app, run_in_flight=False)
    assert (decision.action, decision.status, decision.failed) == ("observe", "degraded", True)
    assert "replica crashed: boom" in decision.reason
    worn = _record(status="degraded", failures=MAX_FAILED_APPLIES, reason=decision.reason)
    final = decide(worn, app, run_in_flight=False)
    assert (final.action, final.status) == ("observe", "failed") and "replica crashed: boom" in final.reason
    assert decide(replace(worn, status="failed"), app, run_in_flight=False).action == "none"  # a PATCH tries again


def test_running_again_heals_and_a_healthy_deployment_is_left_alone():
    healed = decide(_record(status="degraded", failures=1), RUNNING_APP, run_in_flight=False)
    assert (healed.action, healed.status, healed.failed) == ("observe", "running", False)
    assert decide(_record(), RUNNING_APP, run_in_flight=False).action == "none"


# -- canaries ---------------------------------------------------------------------------------------
CANARY = {"version": "1.1.0", "traffic_percent": 20, "promote_after_minutes": 30, "max_error_rate_delta": 0.01,
          "max_p99_latency_ratio": 1.5, "started_at": NOW.isoformat(), "running_at": NOW.replace(second=42).isoformat()}
CANARY_APP = {"status": "RUNNING", "deployments": {"canary": {"status": "HEALTHY", "message": ""}}}


def test_the_canarys_application_is_restored_removed_or_rolled_back_by_what_serve_reports():
    running = _record(canary=CANARY)
    assert decide(running, RUNNING_APP, canary_app=CANARY_APP, run_in_flight=False).action == "none"
    restored = decide(running, RUNNING_APP, canary_app=None, run_in_flight=False)  # Ray restarted
    assert restored.action == "apply" and "canary" in restored.message
    starting = _record(canary={**CANARY, "running_at": None})  # its run has not applied it yet: nothing to restore
    assert decide(starting, RUNNING_APP, canary_app=None, run_in_flight=False).action == "none"
    left = decide(_record(), RUNNING_APP, canary_app=CANARY_APP, run_in_flight=False)  # the canary ended
    assert left.action == "apply" and "left" in left.message
    broken = {"status": "UNHEALTHY", "message": "", "deployments": {"canary": {"message": "replica crashed: boom"}}}
    rollback = decide(running, RUNNING_APP, canary_app=broken, run_in_flight=False)
    assert rollback.action == "rollback" and "1.1.0" in rollback.message and "replica crashed: boom" in rollback.message
    deleting = _record(status="deleting", canary=CANARY)
    assert decide(deleting, None, canary_app=CANARY_APP, run_in_flight=False).action == "delete"


def _traffic(requests: int, errors: int, latency_ms: float):
    from resources.deployments.traffic import Traffic

    traffic = Traffic()
    for i in range(requests):
        traffic.add(i >= errors, latency_ms)
    return traffic


def _judge(stable, canary, minutes: float = 1):
    from datetime import timedelta

    from resources.deployments.reconcile import judge_canary

    record = _record(canary=CANARY)
    return judge_canary(record, {("stable", "1.0.0"): stable, ("canary", "1.1.0"): canary}, NOW + timedelta(minutes=minutes))


def test_a_canary_that_fails_more_is_rolled_back_with_the_figures():
    decision = _judge(_traffic(200, 0, 5), _traffic(40, 4, 5))
    assert decision.action == "rollback" and "error rate 10.00%" in decision.message
    assert decision.figures["canary"]["errors"] == 4 and decision.figures["stable"]["requests"] == 200


def test_a_slow_canary_is_rolled_back():
    decision = _judge(_traffic(200, 0, 4), _traffic(120, 0, 40))
    assert decision.action == "rollback" and "p99 latency 50 ms vs stable 5 ms (at least x6.00" in decision.message


def test_a_p99_one_bucket_up_is_not_a_regression():
    # 28 ms lands in (20, 30], 31 ms in (30, 50]: 50/30 > 1.5 by the buckets' edges alone
    assert _judge(_traffic(200, 0, 28), _traffic(120, 0, 31)).action == "none"
    assert _judge(_traffic(200, 0, 28), _traffic(120, 0, 60)).action == "rollback"  # (50, 75] vs 30: x1.67


def test_the_p99_of_few_requests_is_not_judged():
    # 40 canary requests: their p99 is their slowest one; the error rate is still judged
    assert _judge(_traffic(200, 0, 4), _traffic(40, 0, 400)).action == "none"
    promoted = _judge(_traffic(200, 0, 4), _traffic(40, 0, 400), minutes=31)
    assert promoted.action == "promote" and "p99 not judged (fewer than 100 requests)" in promoted.message


def test_a_clean_canary_is_promoted_after_its_window_and_not_before():
    assert _judge(_traffic(200, 1, 5), _traffic(40, 0, 6), minutes=10).action == "none"
    promoted = _judge(_traffic(200, 1, 5), _traffic(40, 0, 6), minutes=31)
    assert promoted.action == "promote" and "promoted after 30 min" in promoted.message


def test_too_few_canary_requests_decide_nothing():
    assert _judge(_traffic(200, 0, 4), _traffic(10, 10, 900), minutes=60).action == "none"


def test_a_canary_is_judged_from_the_first_whole_slot_after_it_ran():
    from datetime import timedelta

    from resources.deployments.reconcile import canary_window_start, judge_canary

    assert canary_window_start(CANARY) == NOW + timedelta(seconds=60)  # ran at 00:00:42: the slot it ran in and the next are left out
    waiting = {**CANARY, "running_at": None}  # applied, not yet reported running
    assert canary_window_start(waiting) is None
    record = _record(canary=waiting)
    slow = {("stable", "1.0.0"): _traffic(200, 0, 4), ("canary", "1.1.0"): _traffic(40, 0, 400)}
    assert judge_canary(record, slow, NOW + timedelta(minutes=5)).action == "none"


def test_traffic_adds_up_across_routers_and_minutes(state):
    from datetime import timedelta

    from resources.deployments.traffic import TrafficStore

    store = TrafficStore(state)
    store.add("dep-1", "canary", "1.1.0", NOW, _traffic(10, 1, 4))
    store.add("dep-1", "canary", "1.1.0", NOW, _traffic(5, 0, 60))  # another router, the same slot
    store.add("dep-1", "canary", "1.1.0", NOW + timedelta(seconds=10), _traffic(5, 0, 4))
    store.add("dep-1", "stable", "1.0.0", NOW - timedelta(minutes=5), _traffic(7, 0, 4))  # before the window
    found = store.since("dep-1", NOW)
    assert set(found) == {("canary", "1.1.0")}
    canary = found[("canary", "1.1.0")]
    assert (canary.requests, canary.errors, canary.quantile_ms(0.5), canary.quantile_ms(0.99)) == (20, 1, 5.0, 75.0)
    assert store.prune(NOW) == 1 and set(store.since("dep-1", NOW - timedelta(hours=1))) == {("canary", "1.1.0")}
