"""PUT/GET /api/v1/monitoring/{model_id}/policy and GET .../drift/history: bounds, scopes,
tenancy, and the scheduled reports newest first with a cursor."""

from __future__ import annotations

import uuid

import pytest

from mlservice.config.wiring import build_state_store
from resources.monitoring.drift_history import DriftReportStore
from tests.utils.api import error_envelope, register_model
from tests.utils.mlflow_models import log_sklearn_model
from tests.utils.tokens import auth, make_token


@pytest.fixture(scope="module")
def owned(client, settings):
    tenant = f"pol-{uuid.uuid4().hex[:8]}"
    headers = auth(make_token(tenant))
    return {"tenant": tenant, "headers": headers,
            "model_id": register_model(client, headers, log_sklearn_model(settings, tenant), "churn")}


def _policy_url(owned):
    return f"/api/v1/monitoring/{owned['model_id']}/policy"


def test_a_policy_is_set_read_and_replaced(client, owned):
    error_envelope(client.get(_policy_url(owned), headers=owned["headers"]), 404, "POLICY_NOT_FOUND")
    body = {"retrain_on_drift": True, "consecutive_reports": 2, "cooldown_hours": 24, "promote": "production_if_better"}
    put = client.put(_policy_url(owned), json=body, headers=owned["headers"])
    assert put.status_code == 200, put.text
    assert {k: put.json()[k] for k in body} == body and put.json()["last_triggered_at"] is None
    replaced = client.put(_policy_url(owned), json={**body, "retrain_on_drift": False}, headers=owned["headers"]).json()
    assert replaced["retrain_on_drift"] is False and client.get(_policy_url(owned), headers=owned["headers"]).json() == replaced


@pytest.mark.parametrize("bad", [{"consecutive_reports": 0}, {"consecutive_reports": 101}, {"cooldown_hours": -1},
                                 {"promote": "everywhere"}, {"retrain_on_drift": "sometimes"}, {"surprise": 1}])
def test_bad_policies_are_400(client, owned, bad):
    body = {"retrain_on_drift": True, **bad}
    error_envelope(client.put(_policy_url(owned), json=body, headers=owned["headers"]), 400, "INVALID_REQUEST")


def test_policy_scopes_and_tenancy(client, owned):
    reader = auth(make_token(owned["tenant"], scopes="monitoring:read"))
    error_envelope(client.put(_policy_url(owned), json={"retrain_on_drift": True}, headers=reader), 403, "FORBIDDEN")
    other = auth(make_token(f"o-{uuid.uuid4().hex[:8]}"))
    error_envelope(client.put(_policy_url(owned), json={"retrain_on_drift": True}, headers=other), 404, "MODEL_NOT_FOUND")
    error_envelope(client.get(f"/api/v1/monitoring/{owned['model_id']}/drift/history", headers=other), 404, "MODEL_NOT_FOUND")


def test_history_is_newest_first_with_a_cursor(client, settings, owned):
    store = DriftReportStore(build_state_store(settings))
    ids = [store.add(owned["tenant"], owned["model_id"], status="ok", version="1.0.0",
                     report={"overall_drift": i % 2 == 0, "features_checked": 1, "features_drifted": i % 2 == 0})
           for i in range(3)]
    store.add(f"o-{uuid.uuid4().hex[:8]}", owned["model_id"], status="insufficient_data", report=None)  # another tenant's
    url = f"/api/v1/monitoring/{owned['model_id']}/drift/history"
    page = client.get(url, params={"limit": 2}, headers=owned["headers"]).json()
    assert [r["id"] for r in page["reports"]] == ids[::-1][:2] and page["next_before_id"] == ids[1]
    rest = client.get(url, params={"limit": 2, "before_id": page["next_before_id"]}, headers=owned["headers"]).json()
    assert [r["id"] for r in rest["reports"]] == [ids[0]] and rest["next_before_id"] is None
    assert rest["reports"][0]["overall_drift"] is True and "tenant_id" not in rest["reports"][0]
