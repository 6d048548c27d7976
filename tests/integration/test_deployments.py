"""Deployments on a real Ray Serve, through the running platform's API (``mlservice up``): deploy the
demo model, predict through the deployment (the same answer and refusals as in process, every
answer in the prediction log), scale, autoscaling visible in Serve's own status, a rolling update
to another version while a client keeps predicting (no failed request), and delete (gone from
the API and from Serve); every socket of Serve's processes on loopback. Replicas ask for 0.25 CPU
so everything fits the 2-core machine."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import numpy as np

from tests.integration.conftest import DEMO_MODEL, DEMO_TENANT
from tests.utils.platform import Platform, bearer, integration_marks, parts, wait_deployment

pytestmark = integration_marks(timeout_s=900)

FEATURES = {"total_orders": 12, "days_since_last_order": 40, "avg_order_value": 87.5, "support_tickets": 2}


def _serve_app(up: Platform, app_name: str) -> dict | None:
    token = (up.data_dir / "secrets" / "ray_auth_token")
    headers = {"Authorization": f"Bearer {token.read_text().strip()}"} if token.exists() else {}
    with httpx.Client(trust_env=False, timeout=10) as client:
        body = client.get(f"http://127.0.0.1:{up.ports['RAY_DASHBOARD']}/api/serve/applications/", headers=headers).json()
    return (body.get("applications") or {}).get(app_name)


def _records(up: Platform, request_ids: set[str]) -> dict[str, dict]:
    from resources.prediction_log import PredictionLog
    from resources.state_db import StateStore

    state = StateStore(database_url=f"sqlite:///{Path(up.data_dir) / 'api' / 'state.db'}")
    try:
        records = PredictionLog(state).records(DEMO_TENANT, limit=5000)
    finally:
        state.dispose()
    return {r["request_id"]: r for r in records if r["request_id"] in request_ids}


def test_deploy_predict_scale_roll_out_and_delete(up, http):
    headers = bearer(up.token())
    model_id = http.get(f"{up.api}/api/v1/models", headers=headers, params={"name_prefix": DEMO_MODEL}).json()["data"][0]["model_id"]
    versions = http.get(f"{up.api}/api/v1/models/{model_id}/versions", headers=headers).json()["data"]
    run_id = versions[0]["run_id"]
    added = http.post(f"{up.api}/api/v1/models/{model_id}/versions", json={"source": {"run_id": run_id}}, headers=headers)
    assert added.status_code == 201, added.text
    first, second = "1.0.0", added.json()["version"]

    reply = http.post(f"{up.api}/api/v1/deployments", headers=headers, json={
        "model_id": model_id, "version": first, "runtime": "ray_serve", "num_replicas": 1, "resources": {"cpu": 0.25}})
    assert reply.status_code == 202, reply.text
    deployment_id = reply.json()["deployment_id"]
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
    explained = http.post(f"{up.api}/api/v1/predictions", headers=headers, json={
        **body, "deployment_id": deployment_id, "options": {"return_explanation": True}}).json()
    assert explained["explanation"]["method"] == local_explanation(http, up, headers, body)["method"]
    bad = {**body, "deployment_id": deployment_id, "features": {**FEATURES, "total_orders": "many"}}
    refused = http.post(f"{up.api}/api/v1/predictions", json=bad, headers=headers)
    in_process = http.post(f"{up.api}/api/v1/predictions", json={**bad, "deployment_id": None}, headers=headers)
    assert refused.status_code == in_process.status_code == 422, refused.text
    assert refused.json()["error"]["code"] == in_process.json()["error"]["code"] == "VALIDATION_ERROR"
    other = http.post(f"{up.api}/api/v1/predictions", json={**body, "version": second, "deployment_id": deployment_id},
                      headers=headers)
    assert other.status_code == 400, other.text
    logged = _records(up, {answer["request_id"], explained["request_id"]})
    assert set(logged) == {answer["request_id"], explained["request_id"]}
    assert logged[answer["request_id"]]["model_version"] == first
    assert logged[answer["request_id"]]["outputs"]["prediction"] == answer["prediction"]

    # Serve's replicas (and their inter-deployment gRPC servers) listen on loopback only
    from mlservice import exposure

    pids = {pid for found in parts(up).values() for pid in found}
    listening = exposure.listeners(pids)
    assert any(item.process.startswith("ray::ServeRepli") for item in listening), listening
    assert any(item.port == up.ports["SERVE"] for item in listening), listening
    assert [str(item) for item in listening if not exposure.is_loopback(item.address)] == []

    # scale to 2 replicas, then autoscaling (visible in Serve's own status)
    assert http.patch(f"{up.api}/api/v1/deployments/{deployment_id}", json={"num_replicas": 2},
                      headers=headers).status_code == 202
    view = wait_deployment(http, up, headers, deployment_id,
                 lambda v: v.get("status") == "running" and v["versions"][0]["replicas_running"] == 2)
    autoscaling = {"min_replicas": 1, "max_replicas": 2, "target_requests_per_replica": 5}
    assert http.patch(f"{up.api}/api/v1/deployments/{deployment_id}", json={"autoscaling": autoscaling},
                      headers=headers).status_code == 202
    wait_deployment(http, up, headers, deployment_id, lambda v: v.get("status") == "running" and v["autoscaling"] is not None)
    config = _serve_app(up, app_name)["deployments"]["stable"]["deployment_config"]["autoscaling_config"]
    assert (config["min_replicas"], config["max_replicas"], config["target_ongoing_requests"]) == (1, 2, 5.0)

    # a rolling update while a client keeps predicting: no failed request
    failures: list[str] = []
    answered: list[str] = []
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(trust_env=False, timeout=30) as steady:
            while not stop.is_set():
                r = steady.post(f"{up.api}/api/v1/predictions", headers=headers,
                                json={"model_id": model_id, "deployment_id": deployment_id, "features": FEATURES})
                if r.status_code != 200:
                    failures.append(f"{r.status_code} {r.text[:200]}")
                else:
                    answered.append(r.json()["version"])
                time.sleep(0.05)

    worker = threading.Thread(target=client, daemon=True)
    worker.start()
    try:
        assert http.patch(f"{up.api}/api/v1/deployments/{deployment_id}", json={"version": second},
                          headers=headers).status_code == 202
        view = wait_deployment(http, up, headers, deployment_id, lambda v: v.get("status") == "running" and v["version"] == second)
        time.sleep(3)
    finally:
        stop.set()
        worker.join(timeout=60)
    assert failures == [], failures[:5]
    assert first in answered and answered[-1] == second, (answered[:3], answered[-3:])

    # delete: 202, then gone from the API and from Serve
    reply = http.delete(f"{up.api}/api/v1/deployments/{deployment_id}", headers=headers)
    assert reply.status_code == 202 and reply.json()["status"] == "deleting"
    wait_deployment(http, up, headers, deployment_id, lambda v: v.get("status_code") == 404)
    assert _serve_app(up, app_name) is None
    gone = http.post(f"{up.api}/api/v1/predictions", json={**body, "deployment_id": deployment_id}, headers=headers)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "DEPLOYMENT_NOT_FOUND"


def local_explanation(http: httpx.Client, up: Platform, headers: dict, body: dict) -> dict:
    reply = http.post(f"{up.api}/api/v1/predictions", json={**body, "options": {"return_explanation": True}}, headers=headers)
    assert reply.status_code == 200, reply.text
    return reply.json()["explanation"]


def _log_to_platform(up: Platform, model) -> str:
    """Fit-and-log into the running platform's MLflow (a run of the demo tenant's experiment)."""
    from config.settings import Settings
    from tests.utils.mlflow_models import churn_like, log_fitted_model

    settings = Settings(data_dir=up.data_dir, mlflow_tracking_uri=f"http://127.0.0.1:{up.ports['MLFLOW']}",
                        database_url=f"sqlite:///{Path(up.data_dir) / 'api' / 'state.db'}")
    features, labels = churn_like(n=400, seed=5)
    return log_fitted_model(settings, DEMO_TENANT, model.fit(features, labels), features)


def _steady_client(up: Platform, headers: dict, body: dict, stop: threading.Event, failures: list, roles: list) -> None:
    with httpx.Client(trust_env=False, timeout=30) as steady:
        while not stop.is_set():
            r = steady.post(f"{up.api}/api/v1/predictions", headers=headers, json=body)
            if r.status_code != 200:
                failures.append(f"{r.status_code} {r.text[:200]}")
            else:
                roles.append((r.json()["served_by"]["role"], r.json()["version"]))
            time.sleep(0.02)


def test_a_slow_canary_is_rolled_back_and_a_clean_one_promoted(up, http):
    from sklearn.ensemble import RandomForestClassifier

    headers = bearer(up.token())
    model_id = http.get(f"{up.api}/api/v1/models", headers=headers, params={"name_prefix": DEMO_MODEL}).json()["data"][0]["model_id"]
    versions = http.get(f"{up.api}/api/v1/models/{model_id}/versions", headers=headers).json()["data"]
    # slow on purpose: 5,000 shallow trees answer one row in tens of ms (the demo's 100 trees: about 1 ms)
    slow_run = _log_to_platform(up, RandomForestClassifier(n_estimators=5000, max_depth=3, random_state=0))
    slow = http.post(f"{up.api}/api/v1/models/{model_id}/versions", json={"source": {"run_id": slow_run}}, headers=headers)
    clean = http.post(f"{up.api}/api/v1/models/{model_id}/versions", json={"source": {"run_id": versions[-1]["run_id"]}},
                      headers=headers)
    assert slow.status_code == clean.status_code == 201, (slow.text, clean.text)
    slow_version, clean_version = slow.json()["version"], clean.json()["version"]

    reply = http.post(f"{up.api}/api/v1/deployments", headers=headers, json={
        "model_id": model_id, "version": "1.0.0", "num_replicas": 1, "resources": {"cpu": 0.25}})
    assert reply.status_code == 202, reply.text
    deployment_id = reply.json()["deployment_id"]
    wait_deployment(http, up, headers, deployment_id, lambda v: v.get("status") == "running")

    failures: list[str] = []
    roles: list[tuple[str, str]] = []
    stop = threading.Event()
    body = {"model_id": model_id, "deployment_id": deployment_id, "features": FEATURES}
    worker = threading.Thread(target=_steady_client, args=(up, headers, body, stop, failures, roles), daemon=True)
    worker.start()
    try:
        canary = {"version": slow_version, "traffic_percent": 50, "promote_after_minutes": 30, "max_p99_latency_ratio": 1.5}
        assert http.patch(f"{up.api}/api/v1/deployments/{deployment_id}", json={"canary": canary},
                          headers=headers).status_code == 202
        view = wait_deployment(http, up, headers, deployment_id,
                     lambda v: any(e["kind"] == "canary_rolled_back" for e in v.get("events", [])), timeout_s=300)
        rolled = next(e for e in view["events"] if e["kind"] == "canary_rolled_back")
        assert "p99 latency" in rolled["message"], rolled
        assert rolled["details"]["canary"]["requests"] >= 20 and rolled["details"]["canary"]["version"] == slow_version
        assert ("canary", slow_version) in roles
        view = wait_deployment(http, up, headers, deployment_id,
                     lambda v: v.get("status") == "running" and v["canary"] is None and v["applied_generation"] == v["generation"])
        assert view["version"] == "1.0.0" and [v["role"] for v in view["versions"]] == ["stable"]

        canary = {"version": clean_version, "traffic_percent": 50, "promote_after_minutes": 0.25}
        assert http.patch(f"{up.api}/api/v1/deployments/{deployment_id}", json={"canary": canary},
                          headers=headers).status_code == 202
        view = wait_deployment(http, up, headers, deployment_id,
                     lambda v: v.get("version") == clean_version and v["canary"] is None and v.get("status") == "running",
                     timeout_s=300)
        promoted = next(e for e in view["events"] if e["kind"] == "canary_promoted")
        assert "promoted after 0.25 min" in promoted["message"], promoted
        time.sleep(2)
    finally:
        stop.set()
        worker.join(timeout=60)
    assert failures == [], failures[:5]
    assert roles[-1] == ("stable", clean_version), roles[-3:]
    assert http.delete(f"{up.api}/api/v1/deployments/{deployment_id}", headers=headers).status_code == 202
    wait_deployment(http, up, headers, deployment_id, lambda v: v.get("status_code") == 404)
