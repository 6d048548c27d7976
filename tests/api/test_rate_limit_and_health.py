"""Per-tenant rate limits (429 with Retry-After) and the health endpoints."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from serving_api.errors import ApiError
from serving_api.main import create_app
from serving_api.ratelimit.local import RateLimiter
from tests.conftest import make_settings
from tests.utils.api import error_envelope
from tests.utils.tokens import auth, make_token


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("limited")
    settings = make_settings(
        data_dir, rate_limit_per_second=0.01, rate_limit_burst=3,
        rate_limit_overrides={"vip": {"rate": 100, "burst": 50}},
    )
    with TestClient(create_app(settings)) as client:
        yield client


def test_flood_gets_429_with_retry_after_and_spares_other_tenants(limited):
    flooder, bystander = auth(make_token("flooder")), auth(make_token("bystander"))
    statuses = [limited.get("/api/v1/models", headers=flooder).status_code for _ in range(6)]
    assert statuses[:3] == [200, 200, 200]
    assert statuses[3:] == [429, 429, 429]
    refused = limited.get("/api/v1/models", headers=flooder)
    error_envelope(refused, 429, "RATE_LIMITED")
    assert int(refused.headers["retry-after"]) >= 1
    assert limited.get("/api/v1/models", headers=bystander).status_code == 200


def test_per_tenant_override(limited):
    vip = auth(make_token("vip"))
    assert all(limited.get("/api/v1/models", headers=vip).status_code == 200 for _ in range(20))


def test_bucket_refills_with_time(settings):
    now = [0.0]
    limiter = RateLimiter(settings.model_copy(update={"rate_limit_per_second": 2.0, "rate_limit_burst": 2}), clock=lambda: now[0])
    limiter.check("t")
    limiter.check("t")
    with pytest.raises(ApiError) as refused:
        limiter.check("t")
    assert refused.value.headers["Retry-After"] == "1"
    now[0] += 0.5  # one token back at 2 tokens/s
    limiter.check("t")
    with pytest.raises(ApiError):
        limiter.check("t")


def test_unauthenticated_requests_do_not_spend_a_tenants_budget(limited):
    for _ in range(10):
        assert limited.get("/api/v1/models", headers=auth("forged")).status_code == 401
    assert limited.get("/api/v1/models", headers=auth(make_token("untouched"))).status_code == 200


def test_liveness_needs_no_token(client):
    response = client.get("/health/live")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readiness_names_what_is_down(client, headers):
    """The test app's MLflow (SQLite) answers; Dagster and Ray point at a closed port."""
    client.get("/api/v1/models", headers=headers)  # a new SQLite store migrates on first use
    response = client.get("/health/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["components"]["mlflow"] == "ok"
    assert body["unavailable"] == ["dagster", "ray"]
    assert body["components"]["dagster"].startswith("unreachable")


def test_metrics_count_requests_by_route_and_status(client, headers):
    client.get("/api/v1/models/00000000-0000-0000-0000-000000000000", headers=headers)
    text = client.get("/metrics").text
    assert 'mlservice_http_requests_total{method="GET",route="/api/v1/models/{model_id}",status="404"}' in text
    assert 'mlservice_http_errors_total{code="MODEL_NOT_FOUND",method="GET",route="/api/v1/models/{model_id}",status="404"}' in text
    assert "mlservice_http_request_duration_seconds_bucket" in text
