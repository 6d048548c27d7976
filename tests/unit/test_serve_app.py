"""Which of a deployment's Serve applications a run re-runs: an application Serve reports RUNNING
with the fingerprint of the desired state (its ingress's ``user_config``) is left alone, so a
canary that starts or ends never rolls the stable replicas; any change to what a role runs (its
version, replicas, resources) changes its fingerprint."""

from __future__ import annotations

from dataclasses import replace

from assets.deployments.serve_app import ensure, fingerprint, running_fingerprint
from resources.deployments.store import DeploymentRecord
from tests.utils.fakes import deployment_record

CANARY = {"version": "1.1.0", "traffic_percent": 10, "promote_after_minutes": 30, "max_error_rate_delta": 0.01,
          "max_p99_latency_ratio": 1.5}


def _record(**changes) -> DeploymentRecord:
    return deployment_record(**{"spec": {"num_replicas": 2, "autoscaling": None, "resources": {"cpu": 0.25}}, **changes})


def _app(record: DeploymentRecord, role: str, status: str = "RUNNING") -> dict:
    return {"status": status, "deployments": {role: {"deployment_config": {
        "user_config": {"fingerprint": fingerprint(record, role, 1000)}}}}}


def test_each_role_has_its_own_application_and_route():
    record = _record(canary=CANARY)
    assert (record.app_of("stable"), record.app_of("canary")) == ("acme--dep-1", "acme--dep-1--canary")
    assert (record.route_of("stable"), record.route_of("canary")) == ("/acme/dep-1", "/acme/dep-1--canary")
    assert (record.version_of("stable"), record.version_of("canary")) == ("1.0.0", "1.1.0")


def test_what_a_role_runs_is_in_its_fingerprint():
    record = _record(canary=CANARY)
    stable = fingerprint(record, "stable", 1000)
    assert fingerprint(replace(record, canary={**CANARY, "traffic_percent": 50}), "stable", 1000) == stable
    assert fingerprint(replace(record, canary=None), "stable", 1000) == stable  # a canary's end leaves the stable alone
    for changed in (replace(record, version="1.2.0"), replace(record, spec={**record.spec, "num_replicas": 3}),
                    replace(record, spec={**record.spec, "resources": {"cpu": 0.5}})):
        assert fingerprint(changed, "stable", 1000) != stable
    assert fingerprint(record, "stable", 2000) != stable
    assert fingerprint(record, "canary", 1000) != stable
    assert fingerprint(replace(record, spec={**record.spec, "num_replicas": 3}), "canary", 1000) == \
        fingerprint(record, "canary", 1000)  # the canary runs one replica whatever the stable's count


def test_an_application_running_as_desired_is_left_alone():
    record = _record(canary=CANARY)
    assert running_fingerprint(_app(record, "stable"), "stable") == fingerprint(record, "stable", 1000)
    assert running_fingerprint(None, "stable") is None and running_fingerprint({"deployments": {}}, "stable") is None
    left = ensure(record, "stable", _app(record, "stable"), explain_max_cost=1000, timeout_s=1)
    assert (left.status, left.unchanged) == ("RUNNING", True)  # returned without calling Serve (no Ray here)
