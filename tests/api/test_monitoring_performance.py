"""GET /api/v1/monitoring/{model_id}/performance and POST .../feedback: traffic figures from the
prediction log, refusals from the audit log, ground truth joined by request id with metrics equal
to scikit-learn's beside the training metrics, the window and version filters, scopes, tenancy."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score

from tests.utils.api import error_envelope, register_model
from tests.utils.mlflow_models import churn_rows, log_sklearn_model
from tests.utils.tokens import auth, make_token


@pytest.fixture(scope="module")
def traffic(client, settings):
    """Model 'churn' 1.0.0 of a fresh tenant: 60 single-row predictions (their answers kept), one
    two-row request, and 4 refused requests (3 with a missing feature, 1 through OIP with an unknown input)."""
    tenant = f"q-{uuid.uuid4().hex[:8]}"
    headers = auth(make_token(tenant))
    model_id = register_model(client, headers, log_sklearn_model(settings, tenant), "churn")
    rows, labels = churn_rows(60, 21)
    answers = []
    for row in rows:
        answer = client.post("/api/v1/predictions", json={"model_id": model_id, "features": row,
                                                          "options": {"return_probabilities": True}}, headers=headers)
        assert answer.status_code == 200, answer.text
        answers.append(answer.json())
    pair = client.post("/api/v1/predictions", json={"model_id": model_id, "instances": rows[:2]}, headers=headers)
    assert pair.status_code == 200
    for _ in range(3):
        refused = client.post("/api/v1/predictions", json={"model_id": model_id, "features": {"total_orders": 1}}, headers=headers)
        assert refused.status_code == 422
    oip = client.post("/v2/models/churn/infer", json={"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [1.0]}]},
                      headers=headers)
    assert oip.status_code == 400
    return {"tenant": tenant, "headers": headers, "model_id": model_id, "answers": answers, "labels": labels,
            "pair": pair.json()}


def _performance(client, traffic, **params):
    return client.get(f"/api/v1/monitoring/{traffic['model_id']}/performance", params=params, headers=traffic["headers"])


def _feedback(client, traffic, items, headers=None):
    return client.post(f"/api/v1/monitoring/{traffic['model_id']}/feedback", json={"items": items},
                       headers=headers or traffic["headers"])


def test_traffic_figures_come_from_the_prediction_log(client, traffic):
    body = _performance(client, traffic, period_hours=24).json()
    assert body["answered"] == 61 and body["rows"] == 62 and body["period_hours"] == 24
    assert body["errors"] == 4 and body["errors_by_status"] == {"400": 1, "422": 3} and body["requests"] == 65
    assert abs(body["error_rate"] - 4 / 65) < 1e-12
    latencies = [a["latency_ms"] for a in traffic["answers"]] + [traffic["pair"]["latency_ms"]]
    assert abs(body["latency_ms"]["p50"] - float(np.percentile(latencies, 50))) < 1e-9
    assert sum(hour["requests"] for hour in body["throughput_per_hour"]) == 61
    predicted = [a["prediction"][0] for a in traffic["answers"]] + traffic["pair"]["prediction"]
    shares = body["predictions"]["classes"]
    assert shares == {str(c): predicted.count(c) / 62 for c in sorted(set(predicted))}
    assert set(body["versions"]) == {"1.0.0"} and body["versions"]["1.0.0"]["requests"] == 61
    assert body["ground_truth"]["labelled_rows"] == 0 and body["ground_truth"]["metrics"] is None


def test_feedback_joins_by_request_id_and_metrics_equal_scikit_learns(client, traffic):
    answers, labels = traffic["answers"], traffic["labels"]
    items = [{"request_id": a["request_id"], "label": int(y)} for a, y in zip(answers[:40], labels[:40], strict=True)]
    unknown = [{"request_id": "req-never-answered", "label": 1}]
    sent = _feedback(client, traffic, items + unknown)
    assert sent.status_code == 200, sent.text
    assert sent.json()["matched"] == 40 and sent.json()["unknown"] == 1 and sent.json()["unknown_request_ids"] == ["req-never-answered"]
    again = _feedback(client, traffic, items[:5])  # harmless: the same labels again
    assert again.json()["matched"] == 5
    truth = _performance(client, traffic).json()["ground_truth"]
    y_true = labels[:40]
    y_pred = [a["prediction"][0] for a in answers[:40]]
    proba = np.array([a["probabilities"][0] for a in answers[:40]])
    metrics = truth["metrics"]
    assert truth["labelled_rows"] == 40 and abs(truth["coverage"] - 40 / 62) < 1e-12
    assert abs(metrics["accuracy"] - accuracy_score(y_true, y_pred)) < 1e-12
    assert abs(metrics["f1"] - f1_score(y_true, y_pred)) < 1e-12
    assert abs(metrics["log_loss"] - log_loss(y_true, proba, labels=[0, 1])) < 1e-9
    if len(set(y_true)) == 2:
        assert abs(metrics["roc_auc"] - roc_auc_score(y_true, proba[:, 1])) < 1e-12


def test_a_label_per_row_for_a_request_of_two_rows(client, traffic):
    pair = traffic["pair"]
    rejected = _feedback(client, traffic, [{"request_id": pair["request_id"], "label": 1}]).json()
    assert rejected["matched"] == 1 and rejected["stored"] == 0 and rejected["rejected"][0]["request_id"] == pair["request_id"]
    stored = _feedback(client, traffic, [{"request_id": pair["request_id"], "label": [0, 1]}]).json()
    assert stored["stored"] == 1 and stored["rejected"] == []


def test_another_tenants_request_ids_are_unknown_and_its_model_404(client, traffic):
    other = auth(make_token(f"o-{uuid.uuid4().hex[:8]}"))
    error_envelope(_feedback(client, traffic, [{"request_id": "x", "label": 1}], headers=other), 404, "MODEL_NOT_FOUND")
    error_envelope(client.get(f"/api/v1/monitoring/{traffic['model_id']}/performance", headers=other), 404, "MODEL_NOT_FOUND")


def test_feedback_scopes_and_bounds(client, traffic):
    items = [{"request_id": traffic["answers"][50]["request_id"], "label": 0}]
    app_token = auth(make_token(traffic["tenant"], scopes="predictions:write"))
    assert _feedback(client, traffic, items, headers=app_token).status_code == 200
    reader = auth(make_token(traffic["tenant"], scopes="models:read monitoring:read"))
    error_envelope(_feedback(client, traffic, items, headers=reader), 403, "FORBIDDEN")
    too_many = [{"request_id": f"r{i}", "label": 0} for i in range(1001)]
    error_envelope(_feedback(client, traffic, too_many), 400, "INVALID_REQUEST")


def test_window_and_version_filters(client, traffic):
    start = (datetime.now(UTC) - timedelta(days=3)).isoformat()
    end = (datetime.now(UTC) - timedelta(days=2)).isoformat()
    empty = _performance(client, traffic, start=start, end=end).json()
    assert empty["answered"] == 0 and empty["errors"] == 0 and empty["latency_ms"]["p50"] is None
    assert _performance(client, traffic, version="1.0.0").json()["answered"] == 61
    error_envelope(_performance(client, traffic, version="9.9.9"), 404, "VERSION_NOT_FOUND")
    error_envelope(_performance(client, traffic, period_hours=0), 400, "INVALID_REQUEST")


@pytest.mark.parametrize("params", [{"end": "0001-01-01T01:00:00Z"}, {"start": "9999-12-31T00:00:00Z", "end": "9999-12-31T23:59:59Z"},
                                    {"start": "0001-01-01T00:00:00Z", "end": "0001-01-01T05:00:00Z"}])
def test_windows_at_the_ends_of_time_are_answered_not_500(client, traffic, params):
    answer = _performance(client, traffic, **params)
    assert answer.status_code in (200, 400), answer.text
    drift = client.get(f"/api/v1/monitoring/{traffic['model_id']}/drift", params=params, headers=traffic["headers"])
    assert drift.status_code in (400, 404, 422), drift.text
