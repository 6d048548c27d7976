"""Deployments on a real Ray Serve, through the running platform's API (``mlservice up``), as one
lifecycle (each change is a Dagster run and a Serve roll: tens of seconds on 2 cores):

deploy a forest like the demo model (1 replica) -> predict through it (the in-process answer and refusals, every
answer in the prediction log, every socket of Serve's processes on loopback) -> 2 replicas with
autoscaling (visible in Serve's own status) -> while a client keeps predicting: a canary that is
slow on purpose (a pipeline of 3,000 stumps) is rolled back by the reconciler with the figures (the stable
replicas untouched: the canary is an application of its own), a canary whose replicas fail
(its artifact changed after registration) is rolled back with Serve's reason, then a clean
canary is promoted (a rolling update of the stable version), with no failed request; beside
these steps, a deployment of the failing version ends ``failed`` with the reason -> delete (gone
from the API and from Serve). Replicas ask for 0.25 CPU so everything fits the 2-core machine."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.integration.conftest import DEMO_TENANT, FAST_RECONCILER, own_platform
from tests.utils.platform import Platform, bearer, integration_marks, parts, wait_deployment

pytestmark = integration_marks(timeout_s=1500)  # a hang guard: 16 minutes seen in CI beside the shared platform



@pytest.fixture(scope="module")
def up(tmp_path_factory):
    """A platform of this module's own, without the demo (the test logs its own models): its Serve
    replicas hold CPUs that the shared platform's batch jobs would wait on, and its rolls take
    minutes, run beside the shared platform's tests on the tier's other worker."""
    with own_platform(tmp_path_factory, "deployments", args=("--no-demo",), sensors=FAST_RECONCILER) as platform:
        yield platform


FEATURES = {"total_orders": 12, "days_since_last_order": 40, "avg_order_value": 87.5, "support_tickets": 2}


def _serve_app(up: Platform, app_name: str) -> dict | None:
    return (up.ray_dashboard("/api/serve/applications/").get("applications") or {}).get(app_name)


def _records(up: Platform, request_ids: set[str]) -> dict[str, dict]:
    from resources.infra.state_db import StateStore
    from resources.predictions.log import PredictionLog

    state = StateStore(database_url=f"sqlite:///{Path(up.data_dir) / 'api' / 'state.db'}")
    try:
        records = PredictionLog(state).records(DEMO_TENANT, limit=5000)
    finally:
        state.dispose()
    return {r["request_id"]: r for r in records if r["request_id"] in request_ids}


def _log_to_platform(up: Platform, model) -> str:
    """Fit-and-log into the running platform's MLflow (a run of the demo tenant's experiment)."""
    from mlservice.config.settings import Settings
    from tests.utils.mlflow_models import churn_like, log_fitted_model

    settings = Settings(data_dir=up.data_dir, mlflow_tracking_uri=f"http://127.0.0.1:{up.ports['MLFLOW']}",
                        database_url=f"sqlite:///{Path(up.data_dir) / 'api' / 'state.db'}")
    features, labels = churn_like(n=400, seed=5)
    return log_fitted_model(settings, DEMO_TENANT, model.fit(features, labels), features)


def _traffic(up: Platform, deployment_id: str) -> dict[str, dict]:
    """What the API counted per (role, version) over the last 10 minutes, as the reconciler's canary judge reads it."""
    from datetime import UTC, datetime, timedelta

    from resources.deployments.traffic import TrafficStore
    from resources.infra.state_db import StateStore

    state = StateStore(database_url=f"sqlite:///{Path(up.data_dir) / 'api' / 'state.db'}")
    try:
        counted = TrafficStore(state).since(deployment_id, datetime.now(UTC) - timedelta(minutes=10))
    finally:
        state.dispose()
    return {f"{role} {version}": {"requests": t.requests, "errors": t.errors, "p50_ms": t.quantile_ms(0.5),
                                  "p99_ms": (t.quantile_floor_ms(0.99), t.quantile_ms(0.99))} for (role, version), t in counted.items()}


def _tamper(up: Platform, run_id: str) -> None:
    """Change the model files a run logged in the platform's artifact store (after its version was
    registered): the model core refuses to load them (digest mismatch), so its replicas fail to start."""
    import mlflow

    client = mlflow.MlflowClient(f"http://127.0.0.1:{up.ports['MLFLOW']}")
    run = client.get_run(run_id)
    logged = client.search_logged_models(experiment_ids=[run.info.experiment_id],
                                         filter_string=f"source_run_id = '{run_id}'", max_results=1)
    folder = Path(up.data_dir) / "mlflow" / "artifacts" / logged[0].artifact_location.split(":", 1)[1].lstrip("/")
    changed = [path for path in folder.rglob("*") if path.is_file() and path.suffix == ".skops"]
    assert changed, f"no model file under {folder}"
    for path in changed:
        path.write_bytes(path.read_bytes() + b"\0")


def _stable_replicas(up: Platform, app_name: str) -> set[str]:
    app = _serve_app(up, app_name) or {}
    replicas = ((app.get("deployments") or {}).get("stable") or {}).get("replicas") or []
    return {r["replica_id"] for r in replicas if r.get("state") == "RUNNING"}


def _add_version(http: httpx.Client, up: Platform, headers: dict, model_id: str, run_id: str) -> str:
    added = http.post(f"{up.api}/api/v1/models/{model_id}/versions", json={"source": {"run_id": run_id}}, headers=headers)
    assert added.status_code == 201, added.text
    return added.json()["version"]


class SteadyClient:
    """One client predicting through the deployment without pause: every answer's (role, version), every failure."""

    def __init__(self, up: Platform, headers: dict, body: dict) -> None:
        self.up, self.headers, self.body = up, headers, body
        self.failures: list[str] = []
        self.answers: list[tuple[str, str]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(trust_env=False, timeout=30) as client:
            while not self.stop.is_set():
                reply = client.post(f"{self.up.api}/api/v1/predictions", headers=self.headers, json=self.body)
                if reply.status_code != 200:
                    self.failures.append(f"{reply.status_code} {reply.text[:200]}")
                else:
                    self.answers.append((reply.json()["served_by"]["role"], reply.json()["version"]))
                time.sleep(0.02)

    def __enter__(self) -> SteadyClient:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=60)


def _event(view: dict, kind: str) -> dict | None:
    return next((e for e in view.get("events", []) if e["kind"] == kind), None)


def test_a_deployment_from_deploy_to_delete(up, http):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    headers = bearer(up.token())
    # a forest like the demo's (100 trees on churn-like rows), logged into the platform's MLflow
    first_run = _log_to_platform(up, RandomForestClassifier(n_estimators=100, random_state=0))
    registered = http.post(f"{up.api}/api/v1/models", headers=headers, json={
        "name": "churn_deployed", "model_type": "classification", "framework": "sklearn", "source": {"run_id": first_run}})
    assert registered.status_code == 201, registered.text
    model_id, first = registered.json()["model_id"], "1.0.0"
    # slow on purpose: a pipeline of 3,000 stumps answers a row in about 130 ms on the platform's path (the stable's
    # 100 trees: about 1 ms there), logged in about 10 s and loaded in 4 (measured on the 2-core machine). Under
    # CI's load the stable's p99 is 50-75 ms for a p50 of 15, and the judge compares the lower edge of the canary's
    # p99 bucket with the upper edge of the stable's: a canary must be several times slower to be judged so.
    # Not slow enough (CI, not rolled back within 300 s): 3,000 boosting rounds (25 ms) and a bare forest of 2,000
    # trees (30 ms: the platform reads a bare forest's trees directly, a pipeline goes through scikit-learn's own
    # per-tree calls). 5,000 deep trees took 69 s to log.
    slow = _add_version(http, up, headers, model_id, _log_to_platform(
        up, make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=3000, max_depth=1, random_state=0))))
    clean = _add_version(http, up, headers, model_id, first_run)  # the same model again
    broken_run = _log_to_platform(up, RandomForestClassifier(n_estimators=10, max_depth=3, random_state=0))
    broken = _add_version(http, up, headers, model_id, broken_run)
    _tamper(up, broken_run)

    reply = http.post(f"{up.api}/api/v1/deployments", headers=headers, json={
        "model_id": model_id, "version": first, "runtime": "ray_serve", "num_replicas": 1, "resources": {"cpu": 0.25}})
    assert reply.status_code == 202, reply.text
    deployment_id, failing = reply.json()["deployment_id"], None
    try:
        view = wait_deployment(http, up, headers, deployment_id, lambda v: v.get("status") == "running")
        assert view["serve_status"] == "RUNNING" and view["versions"][0]["replicas_running"] == 1, view
        app_name = f"{DEMO_TENANT}--{deployment_id}"

        # through the deployment: the in-process answer, the same refusals, every answer logged
        body = {"model_id": model_id, "version": first, "features": FEATURES}
        local = http.post(f"{up.api}/api/v1/predictions", json=body, headers=headers).json()
        deployed = http.post(f"{up.api}/api/v1/predictions", json={**body, "deployment_id": deployment_id}, headers=headers)
        assert deployed.status_code == 200, deployed.text
        answer = deployed.json()
        assert answer["served_by"] == {"path": "deployment", "deployment_id": deployment_id, "role": "stable"}
        assert local["served_by"] == {"path": "in_process"}
        assert answer["prediction"] == local["prediction"] and answer["version"] == first
        assert np.allclose(answer["probabilities"], local["probabilities"], rtol=0, atol=1e-12)
        explain = {"options": {"return_explanation": True}}
        explained = http.post(f"{up.api}/api/v1/predictions", headers=headers, json={**body, "deployment_id": deployment_id, **explain})
        local_explained = http.post(f"{up.api}/api/v1/predictions", headers=headers, json={**body, **explain})
        assert explained.json()["explanation"] == local_explained.json()["explanation"]
        bad = {**body, "deployment_id": deployment_id, "features": {**FEATURES, "total_orders": "many"}}
        refused = http.post(f"{up.api}/api/v1/predictions", json=bad, headers=headers)
        in_process = http.post(f"{up.api}/api/v1/predictions", json={**bad, "deployment_id": None}, headers=headers)
        assert refused.status_code == in_process.status_code == 422, refused.text
        assert refused.json()["error"]["code"] == in_process.json()["error"]["code"] == "VALIDATION_ERROR"
        other = http.post(f"{up.api}/api/v1/predictions", json={**body, "version": slow, "deployment_id": deployment_id},
                          headers=headers)
        assert other.status_code == 400, other.text
        logged = _records(up, {answer["request_id"], explained.json()["request_id"]})
        assert set(logged) == {answer["request_id"], explained.json()["request_id"]}
        assert logged[answer["request_id"]]["model_version"] == first
        assert logged[answer["request_id"]]["outputs"]["prediction"] == answer["prediction"]

        # Serve's replicas (and their inter-deployment gRPC servers) listen on loopback only
        from mlservice.launcher import exposure

        listening = exposure.listeners({pid for found in parts(up).values() for pid in found})
        assert any(item.process.startswith("ray::ServeRepli") for item in listening), listening
        assert any(item.port == up.ports["SERVE"] for item in listening), listening
        assert [str(item) for item in listening if not exposure.is_loopback(item.address)] == []

        # a deployment whose replicas keep failing (the broken version): it runs its course beside the steps below
        reply = http.post(f"{up.api}/api/v1/deployments", headers=headers, json={
            "model_id": model_id, "version": broken, "num_replicas": 1, "resources": {"cpu": 0.25}})
        assert reply.status_code == 202, reply.text
        failing = reply.json()["deployment_id"]

        # 2 replicas with autoscaling, visible in Serve's own status
        autoscaling = {"min_replicas": 1, "max_replicas": 2, "target_requests_per_replica": 5}
        assert http.patch(f"{up.api}/api/v1/deployments/{deployment_id}", json={"num_replicas": 2, "autoscaling": autoscaling},
                          headers=headers).status_code == 202
        wait_deployment(http, up, headers, deployment_id,
                        lambda v: v.get("status") == "running" and v["autoscaling"] is not None
                        and v["versions"][0]["replicas_running"] == 2)
        config = _serve_app(up, app_name)["deployments"]["stable"]["deployment_config"]["autoscaling_config"]
        assert (config["min_replicas"], config["max_replicas"], config["target_ongoing_requests"]) == (1, 2, 5.0)

        stable_before = _stable_replicas(up, app_name)
        assert len(stable_before) == 2, stable_before
        with SteadyClient(up, headers, {"model_id": model_id, "deployment_id": deployment_id, "features": FEATURES}) as client:
            canary = {"version": slow, "traffic_percent": 50, "promote_after_minutes": 30, "max_p99_latency_ratio": 1.5}
            assert http.patch(f"{up.api}/api/v1/deployments/{deployment_id}", json={"canary": canary},
                              headers=headers).status_code == 202
            try:
                view = wait_deployment(http, up, headers, deployment_id, lambda v: _event(v, "canary_rolled_back") is not None,
                                       timeout_s=300)
            except pytest.fail.Exception as exc:  # what the judge saw (CI: twice not rolled back within 300 s)
                pytest.fail(f"{exc}\ntraffic counted: {_traffic(up, deployment_id)}\nclient: {len(client.answers)} answers, "
                            f"{client.answers.count(('canary', slow))} from the canary, failures {client.failures[:3]}")
            rolled = _event(view, "canary_rolled_back")
            assert "p99 latency" in rolled["message"], rolled
            assert rolled["details"]["canary"]["requests"] >= 20 and rolled["details"]["canary"]["version"] == slow
            assert ("canary", slow) in client.answers
            view = wait_deployment(http, up, headers, deployment_id, lambda v: v.get("status") == "running"
                                   and v["canary"] is None and v["applied_generation"] == v["generation"])
            assert view["version"] == first and [v["role"] for v in view["versions"]] == ["stable"]
            assert _serve_app(up, f"{app_name}--canary") is None  # the canary's application is gone
            assert stable_before <= _stable_replicas(up, app_name)  # and the stable replicas never rolled

            broken_canary = {"version": broken, "traffic_percent": 50, "promote_after_minutes": 30}
            assert http.patch(f"{up.api}/api/v1/deployments/{deployment_id}", json={"canary": broken_canary},
                              headers=headers).status_code == 202
            view = wait_deployment(http, up, headers, deployment_id, lambda v: v.get("status") == "running"
                                   and v["canary"] is None and v["applied_generation"] == v["generation"]
                                   and "did not run" in (_event(v, "canary_rolled_back") or {}).get("message", ""), timeout_s=300)
            assert broken in _event(view, "canary_rolled_back")["message"], view["events"][:3]
            assert ("canary", broken) not in client.answers  # it never took traffic
            assert stable_before <= _stable_replicas(up, app_name)

            canary = {"version": clean, "traffic_percent": 50, "promote_after_minutes": 0.1}
            assert http.patch(f"{up.api}/api/v1/deployments/{deployment_id}", json={"canary": canary},
                              headers=headers).status_code == 202
            view = wait_deployment(http, up, headers, deployment_id, lambda v: v.get("version") == clean and v["canary"] is None
                                   and v.get("status") == "running" and v["applied_generation"] == v["generation"], timeout_s=300)
            assert "promoted after 0.1 min" in _event(view, "canary_promoted")["message"]
            time.sleep(2)
        assert client.failures == [], client.failures[:5]
        assert ("canary", clean) in client.answers and client.answers[-1] == ("stable", clean), client.answers[-3:]

        # the deployment of the broken version (started above, beside the canaries) ended failed, with Serve's reason
        view = wait_deployment(http, up, headers, failing, lambda v: v.get("status") == "failed", timeout_s=300,
                               fail_on_failed=False)
        assert "did not run" in view["reason"] and "failed to start" in view["reason"], view["reason"]
        _remove(http, up, headers, failing)

        # delete: 202, then gone from the API and from Serve
        reply = http.delete(f"{up.api}/api/v1/deployments/{deployment_id}", headers=headers)
        assert reply.status_code == 202 and reply.json()["status"] == "deleting"
        wait_deployment(http, up, headers, deployment_id, lambda v: v.get("status_code") == 404)
        assert _serve_app(up, app_name) is None
        gone = http.post(f"{up.api}/api/v1/predictions", json={**body, "deployment_id": deployment_id}, headers=headers)
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "DEPLOYMENT_NOT_FOUND"
    finally:
        for leftover in (deployment_id, failing):
            if leftover is not None:
                _remove(http, up, headers, leftover)


def _remove(http: httpx.Client, up: Platform, headers: dict, deployment_id: str) -> None:
    """Whatever happened above, the deployment is gone before the next module: its replicas hold
    CPUs of the shared 2-CPU cluster (a batch job sized for the whole cluster would wait on them)."""
    if http.delete(f"{up.api}/api/v1/deployments/{deployment_id}", headers=headers).status_code == 202:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and http.get(f"{up.api}/api/v1/deployments/{deployment_id}",
                                                       headers=headers).status_code != 404:
            time.sleep(2)
