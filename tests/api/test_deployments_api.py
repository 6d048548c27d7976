"""/api/v1/deployments without a cluster: the checks that answer before anything is stored (the
reference's body on the 2-CPU default is a 400 naming what is available; a runtime other than
ray_serve, an autoscaling block without max_replicas, a GPU on a cluster without one: 400;
unknown model or version: 404; another tenant's deployment: 404; one deployment per model
version: 409; Ray unreachable: 503 with nothing stored), and what a change stores and launches
(a deploy_model run per change, with the deployment id and action), with Dagster and Ray as the
API sees them replaced by fakes. Serve itself: tests/integration/test_deployments.py."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient

from resources.jobs.specs import DEPLOY_JOB
from serving_api.main import create_app
from tests.conftest import make_settings
from tests.utils.api import error_envelope, register_model
from tests.utils.fakes import FakeRay, FakeRuns
from tests.utils.mlflow_models import log_sklearn_model
from tests.utils.tokens import auth, make_token

REFERENCE_BODY = {"model_id": "550e8400-...", "version": "1.2.0", "runtime": "ray_serve", "num_replicas": 2,
                  "autoscaling": {"min_replicas": 1, "max_replicas": 10, "target_requests_per_replica": 5},
                  "resources": {"cpu": 2, "memory_gb": 4, "gpu": 0}}
SMALL = {"num_replicas": 1, "resources": {"cpu": 0.25}}
QUOTA_TENANT = f"dq-{uuid.uuid4().hex[:8]}"


def _model_with_two_versions(client, settings, prefix: str) -> tuple[str, dict, str, str]:
    """A fresh tenant (``prefix-...``) with a model of two registered versions: tenant, headers, model id, second version."""
    tenant = f"{prefix}-{uuid.uuid4().hex[:8]}"
    headers = auth(make_token(tenant))
    model_id = register_model(client, headers, log_sklearn_model(settings, tenant), "churn")
    added = client.post(f"/api/v1/models/{model_id}/versions", json={"source": {"run_id": log_sklearn_model(settings, tenant)}},
                        headers=headers)
    assert added.status_code == 201, added.text
    return tenant, headers, model_id, added.json()["version"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("deploy-data")
    (data_dir / "mlflow").mkdir()
    settings = make_settings(data_dir, quota_overrides={QUOTA_TENANT: {"deployments": 1}})
    app = create_app(settings)
    with TestClient(app) as client:
        jobs = app.state.job_service
        real_ray = jobs.ray  # the settings' dashboard (127.0.0.1:9): nothing answers there
        jobs.runs, jobs.ray = FakeRuns(), FakeRay({"CPU": 2.0, "memory": 8 * 1024**3})
        app.state.deployment_service.ray = jobs.ray
        tenant, headers, model_id, _ = _model_with_two_versions(client, settings, "dt")
        yield {"client": client, "app": app, "runs": jobs.runs, "ray": jobs.ray, "headers": headers,
               "tenant": tenant, "model_id": model_id, "settings": settings, "real_ray": real_ray}


def _versions(world) -> list[str]:
    body = world["client"].get(f"/api/v1/models/{world['model_id']}/versions", headers=world["headers"]).json()
    return sorted(v["version"] for v in body["data"])


def _post(world, body, headers=None):
    return world["client"].post("/api/v1/deployments", json=body, headers=headers or world["headers"])


def _finish_runs(world) -> None:
    """Every launched deploy_model run succeeded (each change is a job: unfinished ones count against the tenant's quota)."""
    runs = world["runs"]
    runs.status.update({run_id: "SUCCESS" for run_id in runs.status})


def _count(world) -> int:
    return len(world["client"].get("/api/v1/deployments", headers=world["headers"]).json()["deployments"])


def test_the_reference_body_on_two_cpus_is_400_naming_what_is_available(world):
    version = _versions(world)[0]
    body = {**REFERENCE_BODY, "model_id": world["model_id"], "version": version}
    error = error_envelope(_post(world, body), 400, "INVALID_REQUEST")
    assert "does not fit the Ray cluster" in error["message"] and "the cluster has 2" in error["message"]
    assert error["details"]["available"]["cpu"] == 2 and error["details"]["requested"]["cpu"] == 4
    assert _count(world) == 0 and world["runs"].launched == []
    # the same body fits a cluster that has the resources
    world["ray"].resources = {"CPU": 64.0, "memory": 256 * 1024**3}
    try:
        reply = _post(world, body)
        assert reply.status_code == 202, reply.text
        created = world["client"].get(f"/api/v1/deployments/{reply.json()['deployment_id']}", headers=world["headers"]).json()
        assert created["autoscaling"]["max_replicas"] == 10 and created["num_replicas"] == 2
        assert world["client"].delete(f"/api/v1/deployments/{created['deployment_id']}", headers=world["headers"]).status_code == 202
    finally:
        world["ray"].resources = {"CPU": 2.0, "memory": 8 * 1024**3}


def test_other_deployments_replicas_count_against_a_new_one(world):
    """Deployments' replicas are long-lived reservations on the shared cluster: a new deployment must
    fit beside every other one (any tenant's), else 400 saying what they hold; a deletion frees them."""
    client = world["client"]
    _, headers, model_id, second = _model_with_two_versions(client, world["settings"], "dh")
    world["ray"].resources = {"CPU": 1000.0, "memory": 8 * 1024**3}
    try:
        _finish_runs(world)
        held = _post(world, {"model_id": model_id, "version": "1.0.0", "num_replicas": 32, "resources": {"cpu": 30}}, headers=headers)
        assert held.status_code == 202, held.text
        beside = {"model_id": model_id, "version": second, "num_replicas": 2, "resources": {"cpu": 30}}
        error = error_envelope(_post(world, beside, headers=headers), 400, "INVALID_REQUEST")
        assert "2 replica(s) need 60 CPU, the cluster has 1000 of which other deployments hold" in error["message"], error
        assert error["details"]["available"]["cpu"] <= 40
        assert client.delete(f"/api/v1/deployments/{held.json()['deployment_id']}", headers=headers).status_code == 202
        _finish_runs(world)
        fits = _post(world, beside, headers=headers)  # a deployment being deleted holds nothing
        assert fits.status_code == 202, fits.text
        assert client.delete(f"/api/v1/deployments/{fits.json()['deployment_id']}", headers=headers).status_code == 202
    finally:
        world["ray"].resources = {"CPU": 2.0, "memory": 8 * 1024**3}


@pytest.mark.parametrize(("changes", "needle"), [
    ({"runtime": "kserve"}, "runtime"),
    ({"autoscaling": {"min_replicas": 1, "target_requests_per_replica": 5}}, "max_replicas"),
    ({"autoscaling": {"min_replicas": 3, "max_replicas": 2}}, "must not exceed"),
    ({"num_replicas": 0}, "num_replicas"),
    ({"resources": {"cpu": 0}}, "cpu"),
    ({"resources": {"cpu": 0.25, "gpu": 1}}, "no GPU"),
    ({"resources": {"cpu": 0.25, "memory_gb": 100}}, "memory"),
    ({"surprise": True}, "surprise"),
])
def test_bad_requests_are_400_and_store_nothing(world, changes, needle):
    before, launched = _count(world), len(world["runs"].launched)
    body = {"model_id": world["model_id"], **SMALL, **changes}
    error = error_envelope(_post(world, body), 400, "INVALID_REQUEST")
    assert needle in str(error), error
    assert _count(world) == before and len(world["runs"].launched) == launched


def test_unknown_models_and_versions_are_404(world, other_headers):
    error_envelope(_post(world, {"model_id": "no-such-model", **SMALL}), 404, "MODEL_NOT_FOUND")
    error_envelope(_post(world, {"model_id": world["model_id"], "version": "9.9.9", **SMALL}), 404, "VERSION_NOT_FOUND")
    error_envelope(_post(world, {"model_id": world["model_id"], **SMALL}, headers=other_headers), 404, "MODEL_NOT_FOUND")
    reader = auth(make_token(world["tenant"], scopes="models:read"))
    error_envelope(_post(world, {"model_id": world["model_id"], **SMALL}, headers=reader), 403, "FORBIDDEN")


def test_a_deployment_is_stored_launched_changed_and_deleted(world, other_headers):
    client, headers, runs = world["client"], world["headers"], world["runs"]
    first, second = _versions(world)
    launched = len(runs.launched)
    reply = _post(world, {"model_id": world["model_id"], "version": first, **SMALL})
    assert reply.status_code == 202, reply.text
    accepted = reply.json()
    assert accepted["status"] == "deploying" and accepted["version"] == first and accepted["job_id"]
    deployment_id = accepted["deployment_id"]
    job_name, config = runs.launched[launched]
    assert job_name == DEPLOY_JOB
    step = config["ops"]["model_deployment"]["config"]
    assert (step["deployment_id"], step["action"], step["generation"]) == (deployment_id, "apply", 1)
    # one deployment per model version and tenant
    error = error_envelope(_post(world, {"model_id": world["model_id"], "version": first, **SMALL}), 409, "DEPLOYMENT_EXISTS")
    assert error["details"]["deployment_id"] == deployment_id
    # another tenant sees nothing
    error_envelope(client.get(f"/api/v1/deployments/{deployment_id}", headers=other_headers), 404, "DEPLOYMENT_NOT_FOUND")
    error_envelope(client.patch(f"/api/v1/deployments/{deployment_id}", json={"num_replicas": 2}, headers=other_headers),
                   404, "DEPLOYMENT_NOT_FOUND")
    error_envelope(client.delete(f"/api/v1/deployments/{deployment_id}", headers=other_headers), 404, "DEPLOYMENT_NOT_FOUND")
    assert client.get("/api/v1/deployments", headers=other_headers).json() == {"deployments": []}
    # what Serve reports shows per version
    world["ray"].applications[f"{world['tenant']}--{deployment_id}"] = {
        "status": "RUNNING", "deployments": {"stable": {"target_num_replicas": 1, "replicas": [{"state": "RUNNING"}]}}}
    view = client.get(f"/api/v1/deployments/{deployment_id}", headers=headers).json()
    assert view["serve_status"] == "RUNNING" and view["versions"] == [
        {"version": first, "role": "stable", "traffic_percent": 100.0, "replicas_running": 1, "replicas_target": 1}]
    assert view["endpoint"]["body"]["deployment_id"] == deployment_id and view["job_id"] == accepted["job_id"]
    # changes: scale, a canary beyond the cluster (400), a canary, a rolling update
    _finish_runs(world)
    reply = client.patch(f"/api/v1/deployments/{deployment_id}", json={"num_replicas": 2}, headers=headers)
    assert reply.status_code == 202 and reply.json()["status"] == "updating"
    big = {"resources": {"cpu": 1.5}, "canary": {"version": second, "traffic_percent": 10}}
    error_envelope(client.patch(f"/api/v1/deployments/{deployment_id}", json=big, headers=headers), 400, "INVALID_REQUEST")
    same = {"canary": {"version": first, "traffic_percent": 10}}
    error_envelope(client.patch(f"/api/v1/deployments/{deployment_id}", json=same, headers=headers), 400, "INVALID_REQUEST")
    canary = {"canary": {"version": second, "traffic_percent": 10, "promote_after_minutes": 5}}
    _finish_runs(world)
    assert client.patch(f"/api/v1/deployments/{deployment_id}", json=canary, headers=headers).status_code == 202
    view = client.get(f"/api/v1/deployments/{deployment_id}", headers=headers).json()
    assert [(v["version"], v["role"], v["traffic_percent"]) for v in view["versions"]] == [
        (first, "stable", 100.0), (second, "canary", 0.0)]  # its share starts when its application runs
    from resources.deployments.store import DeploymentStore
    from resources.infra.state_db import utcnow

    DeploymentStore(world["app"].state.job_service.jobs.state).observe(
        deployment_id, status="updating", canary={**view["canary"], "running_at": utcnow().isoformat()})
    world["ray"].applications[f"{world['tenant']}--{deployment_id}--canary"] = {
        "status": "RUNNING", "deployments": {"canary": {"target_num_replicas": 1, "replicas": [{"state": "RUNNING"}]}}}
    view = client.get(f"/api/v1/deployments/{deployment_id}", headers=headers).json()
    assert [(v["version"], v["role"], v["traffic_percent"], v["replicas_running"]) for v in view["versions"]] == [
        (first, "stable", 90.0, 1), (second, "canary", 10.0, 1)]
    error_envelope(client.patch(f"/api/v1/deployments/{deployment_id}", json={}, headers=headers), 400, "INVALID_REQUEST")
    _finish_runs(world)
    assert client.patch(f"/api/v1/deployments/{deployment_id}", json={"version": second, "canary": None},
                        headers=headers).status_code == 202
    view = client.get(f"/api/v1/deployments/{deployment_id}", headers=headers).json()
    assert view["version"] == second and view["canary"] is None and view["generation"] == 4
    assert [e["kind"] for e in view["events"]][:2] == ["run_launched", "updated"]
    # delete: 202, deleting, the version free again at once
    _finish_runs(world)
    reply = client.delete(f"/api/v1/deployments/{deployment_id}", headers=headers)
    assert reply.status_code == 202 and reply.json()["status"] == "deleting"
    assert runs.launched[-1][1]["ops"]["model_deployment"]["config"]["action"] == "delete"
    error_envelope(client.patch(f"/api/v1/deployments/{deployment_id}", json={"num_replicas": 1}, headers=headers),
                   409, "DEPLOYMENT_CONFLICT")
    _finish_runs(world)
    again = _post(world, {"model_id": world["model_id"], "version": second, **SMALL})
    assert again.status_code == 202, again.text


def test_ray_unreachable_is_503_and_stores_nothing(world):
    """The API's own RayCluster against a dashboard address where nothing listens."""
    jobs, deployments = world["app"].state.job_service, world["app"].state.deployment_service
    fake = jobs.ray
    jobs.ray = deployments.ray = world["real_ray"]
    before, launched = _count(world), len(world["runs"].launched)
    try:
        error = error_envelope(_post(world, {"model_id": world["model_id"], **SMALL}), 503, "RAY_UNAVAILABLE")
    finally:
        jobs.ray = deployments.ray = fake
    assert "unreachable" in error["message"]
    assert _count(world) == before and len(world["runs"].launched) == launched


def test_predictions_through_a_deployment_are_forwarded_refused_alike_and_retried_once(world):
    """The API's side of the deployment path, with Serve's proxy answering from a script over real
    HTTP (the integration tier has the real proxy): the rows, request id and subject forwarded; a
    lost answer (500 from the proxy) sent once more; the replica's refusal as the same 422; Serve
    unreachable 503; a running canary's share on its own route, a request it failed answered by the
    stable version, each attempt counted for its version."""
    from resources.deployments.store import DeploymentStore
    from tests.utils.fakes import ScriptedHTTPServer

    client, headers = world["client"], world["headers"]
    version = _versions(world)[0]
    _finish_runs(world)
    before = {d["deployment_id"] for d in client.get("/api/v1/deployments", headers=headers).json()["deployments"]}
    reply = _post(world, {"model_id": world["model_id"], "version": version, **SMALL})
    if reply.status_code == 409:  # an earlier test left this version deployed
        deployment_id = reply.json()["error"]["details"]["deployment_id"]
    else:
        assert reply.status_code == 202, reply.text
        deployment_id = reply.json()["deployment_id"]
    assert deployment_id not in before or reply.status_code == 409
    features = {"total_orders": 3, "days_since_last_order": 9, "avg_order_value": 20.0, "support_tickets": 0}
    body = {"model_id": world["model_id"], "deployment_id": deployment_id, "features": features}
    unavailable = error_envelope(client.post("/api/v1/predictions", json=body, headers=headers), 503, "DEPLOYMENT_UNAVAILABLE")
    assert unavailable["details"]["status"] in ("deploying", "updating") or "serves no predictions" in unavailable["message"]
    DeploymentStore(world["app"].state.job_service.jobs.state).observe(deployment_id, status="running", applied_generation=1)
    deployed = world["app"].state.prediction_service.deployed
    deployed._records.clear()
    with ScriptedHTTPServer() as proxy:
        serve_url, deployed.serve_url = deployed.serve_url, proxy.url
        try:
            _forwarded(world, deployed, proxy, deployment_id, version, body, features)
        finally:
            deployed.serve_url = serve_url


def _forwarded(world, deployed, proxy, deployment_id, version, body, features):
    from resources.deployments.store import DeploymentStore

    client, headers = world["client"], world["headers"]
    script, sent, paths = proxy.script, proxy.bodies, proxy.paths
    answer = {"ok": True, "version": version, "role": "stable", "prediction": [1], "probabilities": [[0.2, 0.8]],
              "confidence": [0.8], "explanation": None, "request_id": "req-from-replica", "latency_ms": 1.0}
    script[:] = [(500, {}), (200, answer)]
    reply = client.post("/api/v1/predictions", json=body, headers=headers)
    assert reply.status_code == 200, reply.text
    got = reply.json()
    assert got["served_by"] == {"path": "deployment", "deployment_id": deployment_id, "role": "stable"}
    assert (got["prediction"], got["probabilities"], got["confidence"], got["request_id"]) == ([1], [[0.2, 0.8]], 0.8, "req-from-replica")
    assert len(sent) == 2 and sent[1]["rows"] == [features] and sent[1]["subject"] and sent[1]["request_id"]
    refusal = {"ok": False, "error": {"code": "VALIDATION_ERROR", "message": "feature 'total_orders': expected an integer",
                                      "details": {"problems": [{"feature": "total_orders"}]}}}
    script[:] = [(200, refusal)]
    error = error_envelope(client.post("/api/v1/predictions", json=body, headers=headers), 422, "VALIDATION_ERROR")
    assert error["details"]["problems"] == [{"feature": "total_orders"}]
    script[:] = ["drop", "drop"]
    error_envelope(client.post("/api/v1/predictions", json=body, headers=headers), 503, "DEPLOYMENT_UNAVAILABLE")
    assert script == []
    wrong_model = {**body, "model_id": "other-model"}
    error_envelope(client.post("/api/v1/predictions", json=wrong_model, headers=headers), 400, "INVALID_REQUEST")

    # a canary that runs takes its share (here all of it) on its own route; a request it failed is
    # answered by the stable version, and each attempt is counted for its version
    from resources.infra.state_db import utcnow

    canary = {"version": "9.9.9", "traffic_percent": 100.0, "promote_after_minutes": 30, "max_error_rate_delta": 0.01,
              "max_p99_latency_ratio": 1.5}
    store = DeploymentStore(world["app"].state.job_service.jobs.state)
    store.observe(deployment_id, status="running", canary=canary)  # not running yet: no share, and not askable
    deployed._records.clear()
    deployed.counter.drain()
    paths.clear()
    script[:] = [(200, answer)]
    assert client.post("/api/v1/predictions", json=body, headers=headers).status_code == 200
    assert paths == [f"/{world['tenant']}/{deployment_id}"]
    error_envelope(client.post("/api/v1/predictions", json={**body, "version": "9.9.9"}, headers=headers), 503,
                   "DEPLOYMENT_UNAVAILABLE")
    store.observe(deployment_id, status="running", canary={**canary, "running_at": utcnow().isoformat()})
    deployed._records.clear()
    paths.clear()
    script[:] = [(500, {}), (200, answer)]
    assert client.post("/api/v1/predictions", json=body, headers=headers).json()["served_by"]["role"] == "stable"
    assert paths == [f"/{world['tenant']}/{deployment_id}--canary", f"/{world['tenant']}/{deployment_id}"]
    canary_answer = {**answer, "version": "9.9.9", "role": "canary"}
    script[:] = [(200, canary_answer)]
    got = client.post("/api/v1/predictions", json=body, headers=headers).json()
    assert (got["version"], got["served_by"]["role"]) == ("9.9.9", "canary")
    script[:] = ["drop", "drop"]  # asked for the canary: no fallback
    error_envelope(client.post("/api/v1/predictions", json={**body, "version": "9.9.9"}, headers=headers), 503,
                   "DEPLOYMENT_UNAVAILABLE")
    counted: dict[tuple[str, str], list[int]] = {}
    for (dep, role, counted_version, _slot), traffic in deployed.counter.drain().items():  # a 10-s slot may split them
        assert dep == deployment_id
        totals = counted.setdefault((role, counted_version), [0, 0])
        totals[0], totals[1] = totals[0] + traffic.requests, totals[1] + traffic.errors
    assert counted == {("canary", "9.9.9"): [4, 3], ("stable", version): [2, 0]}


def test_a_tenant_holds_at_most_its_deployments_quota(world):
    client, settings = world["client"], world["settings"]
    headers = auth(make_token(QUOTA_TENANT))
    model_id = register_model(client, headers, log_sklearn_model(settings, QUOTA_TENANT), "churn")
    added = client.post(f"/api/v1/models/{model_id}/versions", json={"source": {"run_id": log_sklearn_model(settings, QUOTA_TENANT)}},
                        headers=headers)
    assert added.status_code == 201, added.text
    _finish_runs(world)
    assert _post(world, {"model_id": model_id, "version": "1.0.0", **SMALL}, headers=headers).status_code == 202
    error = error_envelope(_post(world, {"model_id": model_id, "version": added.json()["version"], **SMALL}, headers=headers),
                           409, "QUOTA_EXCEEDED")
    assert error["details"]["quota"] == "deployments" and error["details"]["limit"] == 1
    assert len(client.get("/api/v1/deployments", headers=headers).json()["deployments"]) == 1
