"""Ensembles: create/get/list/delete, compatibility checks, weighted combination, partial
failure and quorum, the prediction log and tenant isolation."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from tests.utils.api import error_envelope, register_model
from tests.utils.mlflow_models import churn_like, log_sklearn_model
from tests.utils.tokens import auth, make_token

ROW = {"total_orders": 15, "days_since_last_order": 45, "avg_order_value": 125.5, "support_tickets": 3}


def _register(client, settings, tenant, headers, name, kind, seed=0, model_type="classification"):
    return register_model(client, headers, log_sklearn_model(settings, tenant, kind=kind, seed=seed), name, model_type=model_type)


@pytest.fixture(scope="module")
def world(client, settings):
    tenant = f"e-{uuid.uuid4().hex[:8]}"
    headers = auth(make_token(tenant))
    ids = {
        "lr": _register(client, settings, tenant, headers, "lr", "logistic"),
        "rf": _register(client, settings, tenant, headers, "rf", "forest", seed=1),
        "rf2": _register(client, settings, tenant, headers, "rf2", "forest", seed=2),
        "reg": _register(client, settings, tenant, headers, "reg", "linear", model_type="regression"),
        "multi": _register(client, settings, tenant, headers, "multi", "multiclass"),
    }
    return {"tenant": tenant, "headers": headers, "ids": ids}


def _create(client, world, **body):
    payload = {"name": f"ens-{uuid.uuid4().hex[:6]}", **body}
    return client.post("/api/v1/ensembles", json=payload, headers=world["headers"])


def test_soft_voting_is_the_weighted_mean_of_member_probabilities(client, world):
    ids = world["ids"]
    created = _create(client, world, method="voting_soft", models=[
        {"model_id": ids["lr"], "weight": 0.4}, {"model_id": ids["rf"], "weight": 0.35}, {"model_id": ids["rf2"], "weight": 0.25},
    ], min_models_required=2)
    assert created.status_code == 201, created.text
    ensemble = created.json()
    assert [round(m["weight"], 6) for m in ensemble["models"]] == [0.4, 0.35, 0.25]
    assert ensemble["classes"] == ["0", "1"] and ensemble["model_type"] == "classification"
    answer = client.post(f"/api/v1/ensembles/{ensemble['ensemble_id']}/predict", json={"features": ROW}, headers=world["headers"])
    assert answer.status_code == 200, answer.text
    body = answer.json()
    singles = [client.post("/api/v1/predictions", json={"model_id": ids[k], "features": ROW}, headers=world["headers"]).json()
               for k in ("lr", "rf", "rf2")]
    expected = sum(w * np.array(s["probabilities"][0]) for w, s in zip((0.4, 0.35, 0.25), singles, strict=True))
    assert body["probabilities"][0] == pytest.approx(list(expected), abs=1e-9)
    assert body["prediction"] == [int(np.argmax(expected))] and body["confidence"] == pytest.approx(max(expected))
    assert [m["status"] for m in body["members"]] == ["ok", "ok", "ok"]
    assert all(m["version"] == "1.0.0" and m["latency_ms"] >= 0 for m in body["members"])
    log = client.app.state.prediction_log.records(world["tenant"], model_id=ensemble["ensemble_id"])
    assert [r["request_id"] for r in log].count(body["request_id"]) == 1


def test_hard_voting_and_averaging(client, world):
    ids = world["ids"]
    members = [{"model_id": ids["lr"], "weight": 3}, {"model_id": ids["rf"], "weight": 1}]
    hard = _create(client, world, method="voting_hard", models=members).json()
    frame, _ = churn_like(n=6, seed=5)
    rows = frame.to_dict(orient="records")
    body = client.post(f"/api/v1/ensembles/{hard['ensemble_id']}/predict", json={"instances": rows}, headers=world["headers"]).json()
    lr = client.post("/api/v1/predictions", json={"model_id": ids["lr"], "instances": rows}, headers=world["headers"]).json()
    assert body["prediction"] == lr["prediction"]  # weight 0.75 always wins the majority
    assert all(max(p) >= 0.75 for p in body["probabilities"])
    avg = _create(client, world, method="averaging", models=[{"model_id": ids["reg"], "weight": 1}]).json()
    value = client.post(f"/api/v1/ensembles/{avg['ensemble_id']}/predict", json={"features": ROW}, headers=world["headers"]).json()
    single = client.post("/api/v1/predictions", json={"model_id": ids["reg"], "features": ROW}, headers=world["headers"]).json()
    assert value["prediction"][0] == pytest.approx(single["prediction"][0]) and value["probabilities"] is None


@pytest.mark.parametrize(
    "members,method,fragment",
    [
        (["lr", "reg"], "voting_soft", "needs classification"),
        (["lr", "multi"], "voting_soft", "different classes"),
        (["reg"], "voting_hard", "needs classification"),
        (["lr"], "averaging", "needs regression"),
    ],
)
def test_incompatible_members_are_422(client, world, members, method, fragment):
    ids = {**world["ids"], "missing": str(uuid.uuid4())}
    response = _create(client, world, method=method, models=[{"model_id": ids[m]} for m in members])
    error_envelope(response, 422, "VALIDATION_ERROR")
    assert fragment in str(response.json()["error"]["details"])


def test_a_member_that_does_not_exist_is_404_naming_it(client, world):
    missing = str(uuid.uuid4())
    response = _create(client, world, models=[{"model_id": world["ids"]["lr"]}, {"model_id": missing}])
    error = error_envelope(response, 404, "MODEL_NOT_FOUND")
    assert missing in error["message"] and error["details"]["missing"] == [{"model_id": missing}]
    wrong_version = _create(client, world, models=[{"model_id": world["ids"]["lr"], "version": "9.9.9"}])
    error = error_envelope(wrong_version, 404, "VERSION_NOT_FOUND")
    assert "9.9.9" in error["message"]


@pytest.mark.parametrize("weight", [0, -1])
def test_non_positive_weights_are_400(client, world, weight):
    response = _create(client, world, models=[{"model_id": world["ids"]["lr"], "weight": weight}])
    assert response.status_code == 400


def test_quorum_and_partial_failure(client, world, settings):
    ids = world["ids"]
    headers = world["headers"]
    # A member pinned to the stage "staging": moving that version out makes the member fail.
    client.put(f"/api/v1/models/{ids['rf2']}/stage", json={"version": "1.0.0", "target_stage": "staging"}, headers=headers)
    members = [{"model_id": ids["lr"]}, {"model_id": ids["rf"]}, {"model_id": ids["rf2"], "version": "staging"}]
    tolerant = _create(client, world, models=members, min_models_required=2).json()
    strict = _create(client, world, models=members, fail_on_partial=True).json()
    quorum3 = _create(client, world, models=members, min_models_required=3).json()
    client.put(f"/api/v1/models/{ids['rf2']}/stage", json={"version": "1.0.0", "target_stage": "development"}, headers=headers)

    ok = client.post(f"/api/v1/ensembles/{tolerant['ensemble_id']}/predict", json={"features": ROW}, headers=headers)
    assert ok.status_code == 200, ok.text
    statuses = {m["model_id"]: m["status"] for m in ok.json()["members"]}
    assert statuses == {ids["lr"]: "ok", ids["rf"]: "ok", ids["rf2"]: "failed"}
    for ensemble in (strict, quorum3):
        refused = client.post(f"/api/v1/ensembles/{ensemble['ensemble_id']}/predict", json={"features": ROW}, headers=headers)
        assert refused.status_code == 503, refused.text
        error = refused.json()["error"]
        assert error["code"] == "ENSEMBLE_UNAVAILABLE"
        assert [m["status"] for m in error["details"]["members"]].count("failed") == 1


def test_input_errors_answer_422_not_503(client, world):
    ensemble = _create(client, world, models=[{"model_id": world["ids"]["lr"]}, {"model_id": world["ids"]["rf"]}]).json()
    response = client.post(f"/api/v1/ensembles/{ensemble['ensemble_id']}/predict", json={"features": {"total_orders": 1}},
                           headers=world["headers"])
    error_envelope(response, 422, "VALIDATION_ERROR")


def test_slow_members_time_out(client, settings, monkeypatch):
    tenant = f"slow-{uuid.uuid4().hex[:6]}"
    headers = auth(make_token(tenant))
    fast = _register(client, settings, tenant, headers, "fast", "logistic")
    slow = _register(client, settings, tenant, headers, "slow", "forest")
    body = {"name": "t", "models": [{"model_id": fast}, {"model_id": slow}], "timeout_ms": 300}
    ensemble = client.post("/api/v1/ensembles", json=body, headers=headers).json()
    cache = client.app.state.model_cache
    cache._models.pop(next(k for k in cache._models if k[1] == slow))  # the slow member must load again
    real_load = cache._load

    def slow_load(tenant_id, model_id, resolved):  # a model store that takes a second to answer
        import time

        time.sleep(1.0)
        return real_load(tenant_id, model_id, resolved)

    monkeypatch.setattr(cache, "_load", slow_load)
    answer = client.post(f"/api/v1/ensembles/{ensemble['ensemble_id']}/predict", json={"features": ROW}, headers=headers)
    assert answer.status_code == 200, answer.text
    statuses = {m["model_id"]: m["status"] for m in answer.json()["members"]}
    assert statuses == {fast: "ok", slow: "timeout"}


def test_crud_and_tenant_isolation(client, world):
    ensemble = _create(client, world, models=[{"model_id": world["ids"]["lr"]}]).json()
    eid = ensemble["ensemble_id"]
    assert client.get(f"/api/v1/ensembles/{eid}", headers=world["headers"]).json()["name"] == ensemble["name"]
    assert eid in {e["ensemble_id"] for e in client.get("/api/v1/ensembles", headers=world["headers"]).json()["data"]}
    duplicate = client.post("/api/v1/ensembles", json={"name": ensemble["name"], "models": [{"model_id": world["ids"]["lr"]}]},
                            headers=world["headers"])
    assert duplicate.status_code == 409
    other = auth(make_token("intruder"))
    for method, path, body in (("GET", f"/api/v1/ensembles/{eid}", None), ("DELETE", f"/api/v1/ensembles/{eid}", None),
                               ("POST", f"/api/v1/ensembles/{eid}/predict", {"features": ROW})):
        response = client.request(method, path, json=body, headers=other)
        error_envelope(response, 404, "ENSEMBLE_NOT_FOUND")
    assert client.get("/api/v1/ensembles", headers=other).json()["count"] == 0
    # Another tenant cannot build an ensemble from this tenant's models either.
    stolen = client.post("/api/v1/ensembles", json={"name": "x", "models": [{"model_id": world["ids"]["lr"]}]}, headers=other)
    error_envelope(stolen, 404, "MODEL_NOT_FOUND")  # as if it did not exist
    assert client.delete(f"/api/v1/ensembles/{eid}", headers=world["headers"]).status_code == 204
    assert client.get(f"/api/v1/ensembles/{eid}", headers=world["headers"]).status_code == 404
