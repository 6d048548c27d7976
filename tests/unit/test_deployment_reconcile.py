"""The reconciler's decision per deployment: a run in flight is left alone; a deleting deployment
is deleted (or removed once Serve has nothing); an application that is missing (Ray restarted) or
a change never applied is applied again; Serve's DEPLOY_FAILED / UNHEALTHY makes it degraded and
counts a failure, and after MAX_FAILED_APPLIES it is failed with the reason; RUNNING again heals."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from resources.deployment_reconcile import MAX_FAILED_APPLIES, decide
from resources.deployments import DeploymentRecord

NOW = datetime(2026, 11, 28, tzinfo=UTC)
RUNNING_APP = {"status": "RUNNING", "deployments": {"stable": {"status": "HEALTHY", "message": ""}}}


def _record(**changes) -> DeploymentRecord:
    base = DeploymentRecord(
        deployment_id="dep-1", tenant_id="acme", model_id="m", model_name="churn", version="1.0.0", runtime="ray_serve",
        spec={"num_replicas": 1, "autoscaling": None, "resources": {"cpu": 0.25}}, canary=None, status="running",
        reason=None, generation=2, applied_generation=2, failures=0, created_by="a", created_at=NOW, updated_at=NOW)
    return replace(base, **changes)


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
