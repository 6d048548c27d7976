"""/api/v1/features through the API: the seed's shape, answers equal to Feast's SDK, missing
entities marked, bad refs 400, unknown names 404 with the name, tenant isolation, and the
materialization route's checks (the Dagster run itself: tests/integration)."""

from __future__ import annotations

import uuid

import pytest

from tests.features.conftest import END, REFS, seed_tenant
from tests.utils.api import error_envelope
from tests.utils.tokens import auth, make_token


@pytest.fixture(scope="module")
def feature_tenant(client, settings):
    tenant = f"fs-{uuid.uuid4().hex[:8]}"
    headers = auth(make_token(tenant))
    seed_tenant(settings.data_dir, tenant, n=150)
    applied = client.post("/api/v1/features/apply", headers=headers)
    assert applied.status_code == 200, applied.text
    assert applied.json()["applied"] is True
    client.app.state.feature_store.materialize(tenant, incremental=False, end=END)
    return {"tenant": tenant, "headers": headers}


def _online(client, feature_tenant, **body):
    return client.post("/api/v1/features/online", json=body, headers=feature_tenant["headers"])


def test_online_lookup_has_the_seed_shape_and_equals_the_sdk(client, feature_tenant):
    rows = [{"customer_id": "cust-12"}, {"customer_id": "cust-45"}]
    response = _online(client, feature_tenant, feature_refs=REFS, entity_rows=rows)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    sdk = client.app.state.feature_store.store(feature_tenant["tenant"]).get_online_features(
        features=REFS, entity_rows=rows).to_dict()
    assert [r["customer_id"] for r in results] == ["cust-12", "cust-45"]
    for i, result in enumerate(results):
        for ref in REFS:
            name = ref.split(":")[1]
            assert result[name] == sdk[name][i] and result[name] is not None
        assert result["status"] == "ok" and result["missing"] == []


def test_a_feature_service_can_stand_for_the_refs(client, feature_tenant):
    response = _online(client, feature_tenant, feature_service="churn_v1", entity_rows=[{"customer_id": "cust-3"}])
    assert response.status_code == 200, response.text
    [result] = response.json()["results"]
    assert {"total_orders", "days_since_last_order", "avg_order_value", "support_tickets"} <= set(result)


def test_missing_entities_are_marked_in_place(client, feature_tenant):
    rows = [{"customer_id": "cust-nobody"}, {"customer_id": "cust-1"}]
    results = _online(client, feature_tenant, feature_refs=REFS, entity_rows=rows).json()["results"]
    assert [r["customer_id"] for r in results] == ["cust-nobody", "cust-1"]
    assert results[0]["status"] == "missing" and sorted(results[0]["missing"]) == sorted(r.split(":")[1] for r in REFS)
    assert all(results[0][r.split(":")[1]] is None for r in REFS)
    assert results[1]["status"] == "ok"


@pytest.mark.parametrize("refs", [["total_orders"], ["customer_features:"], [":total_orders"], ["a:b:c"], ["view with space:x"]])
def test_malformed_refs_are_400(client, feature_tenant, refs):
    error_envelope(_online(client, feature_tenant, feature_refs=refs, entity_rows=[{"customer_id": "cust-1"}]), 400, "INVALID_REQUEST")


def test_unknown_view_feature_and_service_are_404_naming_them(client, feature_tenant):
    rows = [{"customer_id": "cust-1"}]
    answer = _online(client, feature_tenant, feature_refs=["nope_features:total_orders"], entity_rows=rows)
    error = error_envelope(answer, 404, "FEATURE_VIEW_NOT_FOUND")
    assert error["details"]["feature_view"] == "nope_features" and "nope_features" in error["message"]
    answer = _online(client, feature_tenant, feature_refs=["customer_features:shoe_size"], entity_rows=rows)
    error = error_envelope(answer, 404, "FEATURE_NOT_FOUND")
    assert error["details"]["feature_ref"] == "customer_features:shoe_size"
    error = error_envelope(_online(client, feature_tenant, feature_service="churn_v99", entity_rows=rows), 404, "FEATURE_SERVICE_NOT_FOUND")
    assert error["details"]["feature_service"] == "churn_v99"


@pytest.mark.parametrize("body", [
    {"feature_refs": REFS, "entity_rows": []},
    {"feature_refs": REFS, "entity_rows": [{"customer_id": "c"}] * 501},
    {"feature_refs": REFS},
    {"entity_rows": [{"customer_id": "cust-1"}]},
    {"feature_refs": REFS, "feature_service": "churn_v1", "entity_rows": [{"customer_id": "cust-1"}]},
    {"feature_refs": REFS, "entity_rows": [{"customer_id": 5}]},
    {"feature_refs": REFS, "entity_rows": [{"user_id": "cust-1"}]},
    {"feature_refs": REFS, "entity_rows": [{"customer_id": None}]},
])
def test_bad_request_bodies_are_400(client, feature_tenant, body):
    error_envelope(_online(client, feature_tenant, **body), 400, "INVALID_REQUEST")


def test_tenants_are_isolated(client, feature_tenant):
    other = auth(make_token(f"fo-{uuid.uuid4().hex[:8]}"))
    body = {"feature_refs": REFS, "entity_rows": [{"customer_id": "cust-1"}]}
    error_envelope(client.post("/api/v1/features/online", json=body, headers=other), 404, "FEATURE_STORE_NOT_FOUND")
    error_envelope(client.get("/api/v1/features/views", headers=other), 404, "FEATURE_STORE_NOT_FOUND")
    error_envelope(client.post("/api/v1/features/materialize", json={"incremental": True}, headers=other), 404, "FEATURE_STORE_NOT_FOUND")
    error_envelope(client.post("/api/v1/features/apply", headers=other), 404, "FEATURE_STORE_NOT_FOUND")  # no feature data


def test_catalog_lists_views_and_services(client, feature_tenant):
    catalog = client.get("/api/v1/features/views", headers=feature_tenant["headers"]).json()
    views = {v["name"]: v for v in catalog["feature_views"]}
    assert {"customer_features", "order_features"} <= set(views)
    assert views["customer_features"]["join_keys"] == ["customer_id"] and views["customer_features"]["ttl_seconds"] > 0
    assert "churn_v1" in {s["name"] for s in catalog["feature_services"]}


def test_apply_again_is_a_no_op(client, feature_tenant):
    again = client.post("/api/v1/features/apply", headers=feature_tenant["headers"])
    assert again.status_code == 200 and again.json()["applied"] is False


@pytest.mark.parametrize("body,status,code", [
    ({"feature_views": ["nope"]}, 404, "FEATURE_VIEW_NOT_FOUND"),
    ({"incremental": True, "start_date": "2026-01-01T00:00:00Z"}, 400, "INVALID_REQUEST"),
    ({"incremental": False, "start_date": "2026-02-01T00:00:00Z", "end_date": "2026-01-01T00:00:00Z"}, 400, "INVALID_REQUEST"),
    ({"incremental": "sometimes"}, 400, "INVALID_REQUEST"),
    ({"feature_views": []}, 400, "INVALID_REQUEST"),
])
def test_materialize_checks_before_anything_is_stored(client, feature_tenant, body, status, code):
    jobs_before = client.get("/api/v1/jobs", params={"kind": "materialization"}, headers=feature_tenant["headers"]).json()["count"]
    error_envelope(client.post("/api/v1/features/materialize", json=body, headers=feature_tenant["headers"]), status, code)
    jobs_after = client.get("/api/v1/jobs", params={"kind": "materialization"}, headers=feature_tenant["headers"]).json()["count"]
    assert jobs_after == jobs_before == 0


def test_materialize_without_dagster_is_503_and_stores_no_job(client, feature_tenant):
    response = client.post("/api/v1/features/materialize", json={"feature_views": ["customer_features"]},
                           headers=feature_tenant["headers"])
    assert response.status_code == 503, response.text  # the test settings point Dagster at a closed port
    assert client.get("/api/v1/jobs", params={"kind": "materialization"}, headers=feature_tenant["headers"]).json()["count"] == 0


def test_scopes(client, feature_tenant):
    read_only = auth(make_token(feature_tenant["tenant"], scopes=("features:read",)))
    error_envelope(client.post("/api/v1/features/materialize", json={}, headers=read_only), 403, "FORBIDDEN")
    no_features = auth(make_token(feature_tenant["tenant"], scopes=("models:read",)))
    error_envelope(client.post("/api/v1/features/online", json={"feature_refs": REFS, "entity_rows": [{"customer_id": "cust-1"}]},
                       headers=no_features), 403, "FORBIDDEN")
