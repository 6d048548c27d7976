"""Attacks on the online path's costs, each refused: too many OIP rows, values a model cannot take,
one bad request in a micro-batch, explanations past their budget or flooding their threads, rows
that escape the rate limit, bogus ids that query the registry every time, and read-only calls
that load models."""

from __future__ import annotations

import os
import threading
import time
import uuid

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from resources.models.registry import ModelRegistry
from serving_api.main import create_app
from tests.conftest import make_settings
from tests.utils.api import error_envelope, move_stages, register_model
from tests.utils.mlflow_models import FEATURES, churn_like, log_fitted_model, log_sklearn_model
from tests.utils.tokens import auth, make_token

ROW = {"total_orders": 15, "days_since_last_order": 45, "avg_order_value": 125.5, "support_tickets": 3}


def _log_scaled(settings, tenant: str) -> str:
    """StandardScaler + LogisticRegression: float64 throughout, but 1.7e308 overflows in the scaler
    (avg_order_value is trained in thousands: its scale is below 1)."""
    frame, labels = churn_like(seed=2)
    frame["avg_order_value"] = frame["avg_order_value"] / 1000
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(frame, labels)
    return log_fitted_model(settings, tenant, model, frame)


def _create(client, headers, name: str, run_id: str, *stages: str) -> str:
    model_id = register_model(client, headers, run_id, name)
    move_stages(client, headers, model_id, "1.0.0", *stages)
    return model_id


@pytest.fixture(scope="module")
def world(client, settings):
    tenant = f"lim-{uuid.uuid4().hex[:8]}"
    headers = auth(make_token(tenant))
    ids = {
        "forest": _create(client, headers, "forest", log_sklearn_model(settings, tenant, kind="forest"), "staging", "production"),
        "logistic": _create(client, headers, "logistic", log_sklearn_model(settings, tenant, kind="logistic")),
        "scaled": _create(client, headers, "scaled", _log_scaled(settings, tenant)),
    }
    return {"tenant": tenant, "headers": headers, **ids}


def _predict(client, world, model: str, **body):
    return client.post("/api/v1/predictions", json={"model_id": world[model], **body}, headers=world["headers"])


def _problem(response, status=422, code="VALIDATION_ERROR") -> list[dict]:
    return error_envelope(response, status, code)["details"]["problems"]


def test_oip_refuses_more_rows_than_instances_allow(client, world):
    def tensors(n):
        return {"inputs": [{"name": f, "shape": [n], "datatype": "INT64", "data": [0] * n} for f in FEATURES]}

    flood = client.post("/v2/models/forest/infer", json=tensors(60_000), headers=world["headers"])
    assert flood.status_code == 400, flood.text[:300]
    error = flood.json()["error"]
    assert error["details"] == {"rows": 60_000, "max_rows": 1000} and "1000" in error["message"]
    lying = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [0.0] * 8000}]}
    assert client.post("/v2/models/forest/infer", json=lying, headers=world["headers"]).status_code == 400
    most = client.post("/v2/models/forest/infer", json=tensors(1000), headers=world["headers"])
    assert most.status_code == 200, most.text[:300]
    assert most.json()["outputs"][0]["shape"] == [1000]


def test_values_a_model_cannot_take_are_422_naming_the_feature_never_500(client, world):
    [problem] = _problem(_predict(client, world, "forest", features={**ROW, "avg_order_value": 1e300}))
    assert problem["feature"] == "avg_order_value" and "float32" in problem["problem"]
    problems = _problem(_predict(client, world, "forest", instances=[ROW, {**ROW, "avg_order_value": -1e39}, ROW]))
    assert problems == [{**problems[0], "instance": 1, "feature": "avg_order_value"}]
    [problem] = _problem(_predict(client, world, "logistic", features={**ROW, "total_orders": 2 ** 63}))
    assert problem["feature"] == "total_orders" and "64-bit" in problem["problem"]
    [problem] = _problem(_predict(client, world, "logistic", features={**ROW, "avg_order_value": 10 ** 400}))
    assert problem["feature"] == "avg_order_value"
    assert _predict(client, world, "logistic", features={**ROW, "avg_order_value": 1e300}).status_code == 200  # float64 takes it
    oip = {"inputs": [{"name": f, "shape": [1], "datatype": "FP64", "data": [1e300 if f == "avg_order_value" else 1.0]}
                      for f in FEATURES]}
    [problem] = _problem(client.post("/v2/models/forest/infer", json=oip, headers=world["headers"]))
    assert problem["feature"] == "avg_order_value"
    ensemble = client.post("/api/v1/ensembles", json={"name": f"e-{uuid.uuid4().hex[:6]}", "models": [{"model_id": world["forest"]}]},
                           headers=world["headers"])
    assert ensemble.status_code == 201, ensemble.text
    voted = client.post(f"/api/v1/ensembles/{ensemble.json()['ensemble_id']}/predict",
                        json={"features": {**ROW, "avg_order_value": 1e300}}, headers=world["headers"])
    assert voted.status_code == 422, voted.text


def test_one_bad_request_in_a_micro_batch_never_fails_the_others(client, world):
    """A value float64 allows but the model's scaler overflows on: the batch fails, each request is
    predicted alone, the bad one gets a 422 naming its feature and every other caller its answer."""
    assert _predict(client, world, "scaled", features=ROW).status_code == 200  # loaded
    cache = client.app.state.model_cache
    served = next(s for k, s in cache._models.items() if k[1] == world["scaled"])
    batcher, real_predict = served.batcher, served.batcher.predict_fn
    gate, first = threading.Event(), threading.Event()

    def gated(inputs):  # hold the first call until every other request is queued behind it
        if not first.is_set():
            first.set()
            gate.wait(10)
        return real_predict(inputs)

    frame, _ = churn_like(n=12, seed=21)
    rows = frame.to_dict(orient="records")
    bad = 5
    rows[bad] = {**rows[bad], "avg_order_value": 1.7e308}
    answers: dict[int, object] = {}

    def call(i):
        answers[i] = _predict(client, world, "scaled", features=rows[i])

    batcher.predict_fn = gated
    try:
        blocker = threading.Thread(target=call, args=(0,))
        blocker.start()
        assert first.wait(10)
        others = [threading.Thread(target=call, args=(i,)) for i in range(1, len(rows))]
        for t in others:
            t.start()
        time.sleep(0.5)  # all queued behind the held call
        gate.set()
        for t in [blocker, *others]:
            t.join(30)
    finally:
        batcher.predict_fn = real_predict
    assert batcher.retried >= 1  # the batch holding the bad row failed and was retried
    [problem] = _problem(answers[bad])
    assert problem["feature"] == "avg_order_value"
    expected = served.model.estimator.predict_proba(frame[FEATURES])
    for i in range(len(rows)):
        if i != bad:
            assert answers[i].status_code == 200, answers[i].text
            assert answers[i].json()["probabilities"][0] == pytest.approx(list(expected[i]), abs=1e-12)


def test_explanations_past_their_cost_budget_are_400_naming_the_cost(client, world, monkeypatch):
    # forest: 16 coalitions x 20 background rows = 320 a row
    monkeypatch.setattr(client.app.state.prediction_service.explainer, "explain_max_cost", 1000)
    options = {"return_explanation": True}
    assert _predict(client, world, "forest", instances=[ROW] * 3, options=options).status_code == 200
    refused = _predict(client, world, "forest", instances=[ROW] * 4, options=options)
    error = error_envelope(refused, 400, "INVALID_REQUEST")
    assert "1,280" in error["message"] and "1,000" in error["message"]
    assert error["details"]["explanation_cost"] == 1280 and error["details"]["max_explanation_cost"] == 1000
    logged = [r["request_id"] for r in client.app.state.prediction_log.records(world["tenant"], limit=1000)]
    assert refused.headers["x-request-id"] not in logged  # refused before any prediction


def test_explanations_saturating_their_threads_leave_loads_and_stage_changes_alone(client, settings, world, monkeypatch):
    import mlservice.inference.contributions as explain_module

    release, entered = threading.Event(), []
    real = explain_module.explain

    def held(*args, **kwargs):
        entered.append(threading.current_thread().name)
        release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(explain_module, "explain", held)
    fresh = _create(client, world["headers"], f"fresh-{uuid.uuid4().hex[:6]}", log_sklearn_model(settings, world["tenant"]))
    default_pool = min(32, (os.cpu_count() or 1) + 4)  # asyncio's default executor: resolutions, loads, stage changes
    flood = [threading.Thread(target=_predict, args=(client, world, "forest"),
                              kwargs={"features": ROW, "options": {"return_explanation": True}}) for _ in range(default_pool + 2)]
    timings: dict[str, float] = {}

    def timed(label, fn):
        started = time.monotonic()
        response = fn()
        assert response.status_code == 200, response.text
        timings[label] = time.monotonic() - started

    try:
        for t in flood:
            t.start()
        deadline = time.monotonic() + 10
        while not entered and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.3)  # the rest of the flood is queued on the explanation threads
        checks = [
            threading.Thread(target=timed, args=("load", lambda: client.post(
                "/api/v1/predictions", json={"model_id": fresh, "features": ROW}, headers=world["headers"]))),
            threading.Thread(target=timed, args=("stage", lambda: client.put(
                f"/api/v1/models/{fresh}/stage", json={"version": "1.0.0", "target_stage": "staging"}, headers=world["headers"]))),
        ]
        for t in checks:
            t.start()
        for t in checks:
            t.join(15)
        running = len(entered)
    finally:
        release.set()
        for t in flood:
            t.join(30)
    assert running == settings.explain_workers  # saturated: one explanation running, the rest waiting
    assert set(timings) == {"load", "stage"} and max(timings.values()) < 10


def test_every_row_is_charged_to_the_rate_limit(client, settings, data_dir):
    tenants = {route: f"rl-{route}-{uuid.uuid4().hex[:6]}" for route in ("api", "oip", "ensemble")}
    ids = {route: _create(client, auth(make_token(t)), "m", log_sklearn_model(settings, t)) for route, t in tenants.items()}
    limited = make_settings(data_dir, rate_limit_overrides={t: {"rate": 0.01, "burst": 50} for t in tenants.values()})
    with TestClient(create_app(limited)) as own:
        headers = auth(make_token(tenants["api"]))
        many = own.post("/api/v1/predictions", json={"model_id": ids["api"], "instances": [ROW] * 50}, headers=headers)
        assert many.status_code == 200, many.text
        after = own.post("/api/v1/predictions", json={"model_id": ids["api"], "features": ROW}, headers=headers)
        error_envelope(after, 429, "RATE_LIMITED")
        headers = auth(make_token(tenants["oip"]))
        tensors = {"inputs": [{"name": f, "shape": [50], "datatype": "INT64", "data": [1] * 50} for f in FEATURES]}
        assert own.post("/v2/models/m/infer", json=tensors, headers=headers).status_code == 200
        assert own.post("/v2/models/m/infer", json=tensors, headers=headers).status_code == 429
        headers = auth(make_token(tenants["ensemble"]))
        ensemble = own.post("/api/v1/ensembles", json={"name": "e", "models": [{"model_id": ids["ensemble"]}]}, headers=headers)
        assert ensemble.status_code == 201, ensemble.text
        path = f"/api/v1/ensembles/{ensemble.json()['ensemble_id']}/predict"
        assert own.post(path, json={"instances": [ROW] * 49}, headers=headers).status_code == 200  # 1 + 49 of the 50
        assert own.post(path, json={"features": ROW}, headers=headers).status_code == 429


def test_bogus_ids_versions_and_names_query_the_registry_once(client, world, monkeypatch):
    calls = {"resolve_version": 0, "_find": 0, "find_by_name": 0}  # every model lookup goes through _find
    for method in calls:
        real = getattr(ModelRegistry, method)

        def counting(self, *args, _real=real, _name=method, **kwargs):
            calls[_name] += 1
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(ModelRegistry, method, counting)
    bogus = str(uuid.uuid4())
    for _ in range(20):
        missing = client.post("/api/v1/predictions", json={"model_id": bogus, "features": ROW}, headers=world["headers"])
        assert missing.status_code == 404
        assert _predict(client, world, "forest", features=ROW, version="9.9.9").status_code == 404
        assert client.get("/v2/models/no-such-model", headers=world["headers"]).status_code == 404
    assert calls == {"resolve_version": 2, "_find": 2, "find_by_name": 1}


def test_read_only_calls_never_load_a_model(client, settings, world):
    name = f"unloaded-{uuid.uuid4().hex[:6]}"
    model_id = _create(client, world["headers"], name, log_sklearn_model(settings, world["tenant"], kind="forest"), "staging")
    cache = client.app.state.model_cache
    loads = cache.loads
    metadata = client.get(f"/v2/models/{name}/versions/1.0.0", headers=auth(make_token(world["tenant"], scopes=("models:read",))))
    assert metadata.status_code == 200, metadata.text
    body = metadata.json()
    assert [i["name"] for i in body["inputs"]] == FEATURES and body["versions"] == ["1.0.0"]
    assert {o["name"]: o["shape"] for o in body["outputs"]} == {"predict": [-1], "predict_proba": [-1, 2]}
    ready = client.get(f"/v2/models/{name}/ready", headers=world["headers"])
    assert ready.status_code == 400 and ready.json() == {"name": name, "ready": False}  # the protocol: 4xx = not ready
    assert cache.loads == loads and not [k for k in cache.cached_keys() if k[1] == model_id]
    assert client.post("/api/v1/predictions", json={"model_id": model_id, "features": ROW}, headers=world["headers"]).status_code == 200
    assert client.get(f"/v2/models/{name}/ready", headers=world["headers"]).json()["ready"] is True
    assert client.get(f"/v2/models/{name}", headers=world["headers"]).json() == body  # now from the loaded model


def test_large_requests_are_validated_and_serialised_off_the_event_loop(client, world, monkeypatch):
    import serving_api.predictions.service as service_module

    threads: dict[str, list[str]] = {"validate": [], "serialise": []}
    real_inputs, real_json = service_module.model_inputs, service_module.prediction_json

    def validate(*args):
        threads["validate"].append(threading.current_thread().name)
        return real_inputs(*args)

    def serialise(*args):
        threads["serialise"].append(threading.current_thread().name)
        return real_json(*args)

    monkeypatch.setattr(service_module, "model_inputs", validate)
    monkeypatch.setattr(service_module, "prediction_json", serialise)
    frame, _ = churn_like(n=200, seed=8)
    many = _predict(client, world, "forest", instances=frame.to_dict(orient="records"))
    assert many.status_code == 200, many.text[:300]
    served = next(s for k, s in client.app.state.model_cache._models.items() if k[1] == world["forest"])
    expected = served.model.estimator.predict_proba(frame[FEATURES])
    assert np.allclose(many.json()["probabilities"], expected, rtol=0, atol=1e-12)
    assert _predict(client, world, "forest", features=ROW).status_code == 200
    assert threads["validate"][0].startswith("predict") and threads["serialise"] == [threads["serialise"][0]]
    assert threads["serialise"][0].startswith("predict")
    assert not threads["validate"][1].startswith("predict")  # one row: on the loop, no thread hop
