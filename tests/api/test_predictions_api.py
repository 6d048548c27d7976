"""Online predictions: contract, version resolution, feature validation, micro-batching
correctness, single-flight loading, the prediction log, tenancy and explanations."""

from __future__ import annotations

import math
import threading
import uuid

import numpy as np
import pytest

from tests.utils.api import error_envelope, register_model
from tests.utils.mlflow_models import FEATURES, churn_like, log_sklearn_model
from tests.utils.tokens import auth, make_token

ROW = {"total_orders": 15, "days_since_last_order": 45, "avg_order_value": 125.5, "support_tickets": 3}


@pytest.fixture(scope="module")
def served(client, settings):
    """A tenant with model 'churn': 1.0.0 (logistic) in production, 1.1.0 (forest) in staging,
    and a regression model 'spend' in production."""
    tenant = f"p-{uuid.uuid4().hex[:8]}"
    headers = auth(make_token(tenant))
    logistic = log_sklearn_model(settings, tenant, kind="logistic")
    forest = log_sklearn_model(settings, tenant, kind="forest")
    model_id = register_model(client, headers, logistic, "churn")
    client.post(f"/api/v1/models/{model_id}/versions", json={"source": {"run_id": forest}}, headers=headers)
    for version, stages in (("1.0.0", ("staging", "production")), ("1.1.0", ("staging",))):
        for stage in stages:
            moved = client.put(f"/api/v1/models/{model_id}/stage", json={"version": version, "target_stage": stage}, headers=headers)
            assert moved.status_code == 200
    linear = log_sklearn_model(settings, tenant, kind="linear")
    spend_id = register_model(client, headers, linear, "spend", model_type="regression")
    return {"tenant": tenant, "headers": headers, "model_id": model_id, "spend_id": spend_id}


def _predict(client, served, **body):
    payload = {"model_id": served["model_id"], **body}
    return client.post("/api/v1/predictions", json=payload, headers=served["headers"])


def test_prediction_has_the_seed_shape(client, served):
    response = _predict(client, served, features=ROW, options={"return_probabilities": True})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["request_id"] == response.headers["x-request-id"]
    assert body["model_id"] == served["model_id"] and body["version"] == "1.0.0"  # production
    assert len(body["prediction"]) == 1 and body["prediction"][0] in (0, 1)
    [proba] = body["probabilities"]
    assert len(proba) == 2 and math.isclose(sum(proba), 1.0, rel_tol=1e-9)
    assert body["confidence"] == max(proba) and body["latency_ms"] > 0
    assert body["prediction"][0] == int(np.argmax(proba))


@pytest.mark.parametrize("version,expected", [(None, "1.0.0"), ("production", "1.0.0"), ("staging", "1.1.0"), ("1.1.0", "1.1.0")])
def test_version_resolution(client, served, version, expected):
    response = _predict(client, served, features=ROW, **({"version": version} if version else {}))
    assert response.status_code == 200, response.text
    assert response.json()["version"] == expected


def test_refused_predictions_close_their_arrival_tickets(client, served):
    """A prediction refused before any batcher (404, 422, 400) still closes its ticket: a
    lingering batch would otherwise wait out its whole window on every round."""
    arrivals = client.app.state.arrivals
    opened, joined = arrivals.opened, arrivals.joined
    assert _predict(client, served, features={**ROW, "total_orders": "many"}).status_code in (400, 422)
    assert _predict(client, served, features=ROW, version="9.9.9").status_code == 404
    assert client.post("/api/v1/predictions", json={"model_id": served["model_id"]}, headers=served["headers"]).status_code == 400
    assert _predict(client, served, features=ROW).status_code == 200
    assert client.get("/api/v1/models", headers=served["headers"]).status_code == 200  # not a prediction: no ticket
    # 4 tickets, none left open; only the 200's closed by entering the batcher (the route sees its ticket)
    assert (arrivals.opened - opened, arrivals.joined - joined, arrivals.pending) == (4, 1, 0)


def test_unknown_model_version_and_other_tenants(client, served):
    missing = _predict(client, served, features=ROW, version="9.9.9")
    error_envelope(missing, 404, "VERSION_NOT_FOUND")
    assert _predict(client, served, features=ROW, version="archived").status_code == 404
    unknown = client.post("/api/v1/predictions", json={"model_id": str(uuid.uuid4()), "features": ROW}, headers=served["headers"])
    error_envelope(unknown, 404, "MODEL_NOT_FOUND")
    other = client.post("/api/v1/predictions", json={"model_id": served["model_id"], "features": ROW},
                        headers=auth(make_token("someone-else")))
    assert other.status_code == 404 and other.json()["error"] == {**other.json()["error"], "code": "MODEL_NOT_FOUND"}


@pytest.mark.parametrize(
    "features,feature,problem",
    [
        ({k: v for k, v in ROW.items() if k != "support_tickets"}, "support_tickets", "missing"),
        ({**ROW, "favourite_colour": 1}, "favourite_colour", "unknown feature"),
        ({**ROW, "avg_order_value": "lots"}, "avg_order_value", "expected a number"),
        ({**ROW, "total_orders": 15.5}, "total_orders", "expected an integer"),
        ({**ROW, "avg_order_value": True}, "avg_order_value", "expected a number"),
        ({**ROW, "avg_order_value": None}, "avg_order_value", "is null"),
    ],
)
def test_features_that_do_not_fit_are_422_with_a_per_feature_list(client, served, features, feature, problem):
    response = _predict(client, served, features=features)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert any(p["feature"] == feature and p["problem"].startswith(problem) for p in error["details"]["problems"])
    assert [f["name"] for f in error["details"]["expected"]] == FEATURES


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_values_are_422(client, served, literal):
    body = ('{{"model_id": "{}", "features": {{"total_orders": 1, "days_since_last_order": 2, '
            '"avg_order_value": {}, "support_tickets": 0}}}}').format(served["model_id"], literal)
    response = client.post("/api/v1/predictions", content=body, headers={**served["headers"], "content-type": "application/json"})
    assert response.status_code == 422, response.text
    [problem] = response.json()["error"]["details"]["problems"]
    assert problem == {"feature": "avg_order_value", "problem": "must be finite (no NaN or infinity)"}


def test_bad_request_shapes_are_400(client, served):
    assert _predict(client, served).status_code == 400  # neither features nor instances
    assert _predict(client, served, features=ROW, instances=[ROW]).status_code == 400
    assert _predict(client, served, instances=[]).status_code == 400
    assert _predict(client, served, instances=[ROW] * 1001).status_code in (400, 413)


def test_instances_return_one_prediction_each(client, served):
    frame, _ = churn_like(n=5, seed=3)
    rows = frame.to_dict(orient="records")
    response = _predict(client, served, instances=rows)
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["prediction"]) == len(body["probabilities"]) == len(body["confidence"]) == 5


def test_regression_returns_values_without_probabilities(client, served):
    response = client.post("/api/v1/predictions", json={"model_id": served["spend_id"], "features": ROW}, headers=served["headers"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert isinstance(body["prediction"][0], float)
    assert body["probabilities"] is None and body["confidence"] is None


def test_concurrent_requests_are_batched_and_answer_like_single_calls(client, served):
    frame, _ = churn_like(n=40, seed=11)
    rows = frame.to_dict(orient="records")
    _predict(client, served, features=rows[0])  # loaded
    cache = client.app.state.model_cache
    entry = next(s for k, s in cache._models.items() if k[1] == served["model_id"] and k[2] == "1.0.0")
    batches_before = entry.batcher.batches
    answers: dict[int, dict] = {}
    barrier = threading.Barrier(len(rows))

    def call(i):
        barrier.wait()
        answers[i] = _predict(client, served, features=rows[i]).json()

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(rows))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    batches = entry.batcher.batches - batches_before
    assert batches < len(rows)  # concurrent requests shared predict calls
    assert client.app.state.arrivals.pending == 0  # every request's arrival ticket closed (a batch never waits on it)
    expected = entry.model.estimator.predict_proba(frame[FEATURES])
    for i in range(len(rows)):
        assert answers[i]["probabilities"][0] == pytest.approx(list(expected[i]), abs=1e-12)


def test_concurrent_misses_load_a_model_once(client, settings):
    tenant = f"sf-{uuid.uuid4().hex[:8]}"
    headers = auth(make_token(tenant))
    run_id = log_sklearn_model(settings, tenant, kind="forest")
    model_id = register_model(client, headers, run_id, "fresh")
    cache = client.app.state.model_cache
    loads_before = cache.loads
    statuses, barrier = [], threading.Barrier(8)

    def call():
        barrier.wait()
        statuses.append(client.post("/api/v1/predictions", json={"model_id": model_id, "features": ROW}, headers=headers).status_code)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 8
    assert cache.loads - loads_before == 1


def test_same_model_name_in_two_tenants_serves_each_its_own(client, settings):
    answers = {}
    for label, kind in (("a", "logistic"), ("b", "forest")):
        tenant = f"twin-{label}-{uuid.uuid4().hex[:6]}"
        headers = auth(make_token(tenant))
        run_id = log_sklearn_model(settings, tenant, kind=kind)
        model_id = register_model(client, headers, run_id, "same-name")
        body = client.post("/api/v1/predictions", json={"model_id": model_id, "features": ROW}, headers=headers).json()
        answers[label] = (model_id, body["probabilities"][0])
    assert answers["a"][0] != answers["b"][0]
    assert answers["a"][1] != answers["b"][1]  # each tenant's own model answered


def test_stage_change_is_seen_at_once(client, settings):
    tenant = f"st-{uuid.uuid4().hex[:8]}"
    headers = auth(make_token(tenant))
    first, second = log_sklearn_model(settings, tenant, kind="logistic"), log_sklearn_model(settings, tenant, kind="forest")
    model_id = register_model(client, headers, first, "m")
    client.post(f"/api/v1/models/{model_id}/versions", json={"source": {"run_id": second}}, headers=headers)
    for version in ("1.0.0", "1.1.0"):
        for stage in ("staging", "production"):
            client.put(f"/api/v1/models/{model_id}/stage", json={"version": version, "target_stage": stage}, headers=headers)
        answer = client.post("/api/v1/predictions", json={"model_id": model_id, "features": ROW}, headers=headers).json()
        assert answer["version"] == version


def test_every_200_has_exactly_one_log_record_and_refusals_none(client, served):
    ids = []
    for _ in range(5):
        ok = _predict(client, served, features=ROW)
        assert ok.status_code == 200
        ids.append(ok.json()["request_id"])
    bad = _predict(client, served, features={"total_orders": 1})
    assert bad.status_code == 422
    records = client.app.state.prediction_log.records(served["tenant"], model_id=served["model_id"], limit=1000)
    logged = [r["request_id"] for r in records]
    for request_id in ids:
        assert logged.count(request_id) == 1
    assert bad.headers["x-request-id"] not in logged
    record = next(r for r in records if r["request_id"] == ids[0])
    assert record["features"] == [ROW] and record["model_version"] == "1.0.0"
    assert record["outputs"]["prediction"] == _predict(client, served, features=ROW).json()["prediction"]


def test_explanations_sum_to_the_model_output(client, served):
    linear = _predict(client, served, features=ROW, options={"return_explanation": True}).json()["explanation"]
    assert linear["method"].startswith("linear_exact")
    assert linear["base_value"] + sum(linear["contributions"].values()) == pytest.approx(linear["output"], abs=1e-6)
    assert set(linear["contributions"]) == set(FEATURES)
    forest = _predict(client, served, features=ROW, version="staging", options={"return_explanation": True}).json()
    explanation = forest["explanation"]
    assert explanation["method"].startswith("shapley")
    assert explanation["base_value"] + sum(explanation["contributions"].values()) == pytest.approx(explanation["output"], abs=1e-6)
    assert explanation["output"] == pytest.approx(forest["confidence"], abs=1e-9)  # the predicted class's probability


def test_a_reused_request_id_still_gets_one_record_per_answer(client, served):
    headers = {**served["headers"], "X-Request-ID": f"client-{uuid.uuid4().hex[:8]}"}
    first = client.post("/api/v1/predictions", json={"model_id": served["model_id"], "features": ROW}, headers=headers)
    second = client.post("/api/v1/predictions", json={"model_id": served["model_id"], "features": ROW}, headers=headers)
    assert first.status_code == second.status_code == 200
    ids = {first.json()["request_id"], second.json()["request_id"]}
    assert len(ids) == 2 and headers["X-Request-ID"] in ids
    logged = [r["request_id"] for r in client.app.state.prediction_log.records(served["tenant"], limit=1000)]
    assert all(logged.count(i) == 1 for i in ids)


def _two_versions_1_0_0_in_production(client, settings):
    """A model of a new tenant with versions 1.0.0 (production) and 1.1.0; (tenant, model id, a
    function that predicts one row and answers the version that served it)."""
    tenant = f"swr-{uuid.uuid4().hex[:8]}"
    headers = auth(make_token(tenant))
    first, second = log_sklearn_model(settings, tenant, kind="logistic"), log_sklearn_model(settings, tenant, kind="forest")
    model_id = register_model(client, headers, first, "m")
    client.post(f"/api/v1/models/{model_id}/versions", json={"source": {"run_id": second}}, headers=headers)
    for stage in ("staging", "production"):
        client.put(f"/api/v1/models/{model_id}/stage", json={"version": "1.0.0", "target_stage": stage}, headers=headers)

    def version() -> str:
        response = client.post("/api/v1/predictions", json={"model_id": model_id, "features": ROW}, headers=headers)
        assert response.status_code == 200, response.text
        return response.json()["version"]

    return tenant, model_id, version


def test_a_stage_change_by_another_replica_is_picked_up_after_the_ttl(client, settings):
    """Stale-while-revalidate: past the TTL the known resolution still answers at once, and one
    background refresh brings the other replica's change in."""
    import time

    tenant, model_id, version = _two_versions_1_0_0_in_production(client, settings)
    assert version() == "1.0.0"
    registry = client.app.state.registry  # "another replica": the registry changes, this cache is not told
    for stage in ("staging", "production"):
        registry.transition_stage(tenant, model_id, version="1.1.0", target_stage=stage, actor="other-replica")
    cache = client.app.state.model_cache
    assert version() == "1.0.0"  # within the TTL: the cached resolution
    ttl = cache.resolve_ttl_s
    cache.resolve_ttl_s = 0.0
    try:
        assert version() == "1.0.0"  # stale: answered at once, a refresh starts in the background
        seen = []
        for _ in range(100):
            seen.append(version())
            if seen[-1] == "1.1.0":
                break
            time.sleep(0.05)
        assert seen[-1] == "1.1.0"
    finally:
        cache.resolve_ttl_s = ttl



def test_with_a_shared_redis_another_replicas_promotion_is_served_by_the_next_prediction(client, settings, redis_server,
                                                                                         monkeypatch):
    """MLSERVICE_REDIS_URL: the registry announces each change (resources/models/change_counters.py) and
    the cache checks the model's counter before it answers from a resolution, so the promotion made
    through another replica (or a run) is served at once, not after the TTL."""
    from resources.models.change_counters import generations_for

    tenant, model_id, version = _two_versions_1_0_0_in_production(client, settings)
    cache = client.app.state.model_cache
    monkeypatch.setattr(cache, "generations", generations_for(redis_server.url()))
    assert version() == "1.0.0" and version() == "1.0.0"
    other = client.app.state.registry.model_copy(update={"redis_url": redis_server.url()})  # another replica's registry
    for stage in ("staging", "production"):
        other.transition_stage(tenant, model_id, version="1.1.0", target_stage=stage, actor="other-replica")
    assert version() == "1.1.0"  # the very next prediction, with the TTL (10 s) far from over
    other.transition_stage(tenant, model_id, version="1.0.0", target_stage="production", via="staging", actor="other-replica")
    assert version() == "1.0.0"  # back: a rollback is seen the same way


def test_answered_predictions_are_logged_with_their_subject_and_not_audited_twice(client, served):
    import time

    ok = _predict(client, served, features=ROW)
    refused = _predict(client, served, features={"total_orders": 1})
    assert ok.status_code == 200 and refused.status_code == 422
    audit, deadline = client.app.state.audit, time.monotonic() + 10
    while True:  # the audit writer flushes in the background every 0.2 s
        audited = {r["request_id"]: r for r in audit.records(tenant_id=served["tenant"], limit=1000)}
        if refused.headers["x-request-id"] in audited or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert refused.headers["x-request-id"] in audited
    assert audited[refused.headers["x-request-id"]]["error_code"] == "VALIDATION_ERROR"
    assert ok.json()["request_id"] not in audited
    [record] = [r for r in client.app.state.prediction_log.records(served["tenant"], limit=1000)
                if r["request_id"] == ok.json()["request_id"]]
    assert record["subject"] == f"user@{served['tenant']}"


def test_promotion_to_production_loads_the_version_before_the_first_request(client, settings):
    import time

    tenant = f"warm-{uuid.uuid4().hex[:8]}"
    headers = auth(make_token(tenant))
    run_id = log_sklearn_model(settings, tenant, kind="forest")
    model_id = register_model(client, headers, run_id, "warm")
    cache = client.app.state.model_cache
    key = (tenant, model_id, "1.0.0")
    client.put(f"/api/v1/models/{model_id}/stage", json={"version": "1.0.0", "target_stage": "staging"}, headers=headers)
    assert key not in cache.cached_keys()  # staging: loaded on demand only
    loads = cache.loads
    promoted = client.put(f"/api/v1/models/{model_id}/stage", json={"version": "1.0.0", "target_stage": "production"}, headers=headers)
    assert promoted.status_code == 200, promoted.text
    deadline = time.monotonic() + 30
    while key not in cache.cached_keys() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert key in cache.cached_keys() and cache.loads == loads + 1  # loaded without any prediction
    assert client.post("/api/v1/predictions", json={"model_id": model_id, "features": ROW}, headers=headers).status_code == 200
    assert cache.loads == loads + 1  # the request found it loaded
