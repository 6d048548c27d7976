"""Request ids of predictions: the log is keyed per tenant, so two tenants sending the same
X-Request-ID both get it back unchanged with one record each (neither learns the other used it);
a tenant reusing its own id gets a suffixed id that still fits the 128-character column."""

from __future__ import annotations

import threading
import uuid

from tests.utils.api import register_model
from tests.utils.mlflow_models import log_sklearn_model
from tests.utils.tokens import auth, make_token

ROW = {"total_orders": 15, "days_since_last_order": 45, "avg_order_value": 125.5, "support_tickets": 3}


def _serving_tenant(client, settings) -> dict:
    tenant = f"rid-{uuid.uuid4().hex[:8]}"
    headers = auth(make_token(tenant))
    run_id = log_sklearn_model(settings, tenant, kind="logistic")
    model_id = register_model(client, headers, run_id, "churn")
    for stage in ("staging", "production"):
        moved = client.put(f"/api/v1/models/{model_id}/stage", json={"version": "1.0.0", "target_stage": stage}, headers=headers)
        assert moved.status_code == 200, moved.text
    return {"tenant": tenant, "headers": headers, "model_id": model_id}


def _predict(client, who: dict, request_id: str):
    return client.post("/api/v1/predictions", json={"model_id": who["model_id"], "features": ROW},
                       headers={**who["headers"], "X-Request-ID": request_id})


def _records(client, tenant: str, request_id: str) -> list[dict]:
    log = client.app.state.prediction_log
    return [r for r in log.records(tenant, limit=1000) if r["client_request_id"] == request_id]


def test_two_tenants_sending_the_same_request_id_at_once_each_get_it_back(client, settings):
    tenants = [_serving_tenant(client, settings), _serving_tenant(client, settings)]
    for _ in range(5):
        request_id = f"shared-{uuid.uuid4().hex[:12]}"
        barrier, answers = threading.Barrier(2), {}

        def call(who, barrier=barrier, answers=answers, request_id=request_id):
            barrier.wait()
            answers[who["tenant"]] = _predict(client, who, request_id)

        threads = [threading.Thread(target=call, args=(who,)) for who in tenants]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        for who in tenants:
            answer = answers[who["tenant"]]
            assert answer.status_code == 200, answer.text
            assert answer.json()["request_id"] == request_id  # no suffix: nothing reveals the other tenant
            assert answer.headers["x-request-id"] == request_id
            [record] = _records(client, who["tenant"], request_id)
            assert record["request_id"] == request_id


def test_a_reused_128_character_id_gets_a_suffixed_id_that_fits(client, settings):
    who = _serving_tenant(client, settings)
    long_id = uuid.uuid4().hex + "x" * 96
    assert len(long_id) == 128
    first, second = _predict(client, who, long_id), _predict(client, who, long_id)
    assert first.status_code == second.status_code == 200
    assert first.json()["request_id"] == long_id
    suffixed = second.json()["request_id"]
    assert suffixed != long_id and len(suffixed) <= 128 and suffixed.startswith(long_id[:119] + "~")
    records = _records(client, who["tenant"], long_id)
    assert sorted(r["request_id"] for r in records) == sorted([long_id, suffixed])  # one record per answer
