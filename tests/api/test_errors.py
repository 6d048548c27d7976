"""The error envelope, request ids, body limits, and the audit trail of writes and refusals."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from serving_api.main import create_app
from tests.conftest import make_settings
from tests.utils.api import error_envelope
from tests.utils.tokens import TEST_SECRET


def test_malformed_json_is_400(client, headers):
    response = client.post("/api/v1/models", content=b'{"name": "x",', headers={**headers, "content-type": "application/json"})
    error = error_envelope(response, 400, "INVALID_REQUEST")
    assert "JSON" in error["message"]


@pytest.mark.parametrize(
    "body",
    [
        {"name": ""},
        {"name": "has space"},
        {"name": "m", "model_type": "clustering"},
        {"name": "m", "framework": "cobol"},
        {"name": "m", "unexpected": 1},
        {"name": "m", "tags": {"k": 5}},
        {"name": "m", "source": {"run_id": "nothex"}},
        [],
        "just a string",
    ],
)
def test_body_not_matching_schema_is_400(client, headers, body):
    error = error_envelope(client.post("/api/v1/models", json=body, headers=headers), 400, "INVALID_REQUEST")
    assert error["details"]


def test_reserved_tag_prefix_is_400(client, headers):
    response = client.post("/api/v1/models", json={"name": "m", "tags": {"mlservice.tenant": "other"}}, headers=headers)
    error_envelope(response, 400, "INVALID_REQUEST")


def test_unknown_route_and_method(client, headers):
    error_envelope(client.get("/api/v1/nothing-here", headers=headers), 404, "NOT_FOUND")
    error_envelope(client.delete("/api/v1/models", headers=headers), 405, "METHOD_NOT_ALLOWED")


def test_request_id_is_echoed_or_generated(client, headers):
    given = client.get("/api/v1/models", headers={**headers, "X-Request-ID": "my-trace-42"})
    assert given.headers["x-request-id"] == "my-trace-42"
    generated = client.get("/api/v1/models", headers={**headers, "X-Request-ID": "bad id with spaces\t"})
    assert generated.headers["x-request-id"].startswith("req-")
    assert client.get("/health/live").headers["x-request-id"].startswith("req-")


def test_body_over_the_limit_is_413(tmp_path):
    settings = make_settings(tmp_path, max_body_bytes=1000)
    with TestClient(create_app(settings)) as small:
        big = {"name": "m", "description": "x" * 2000}
        from tests.utils.tokens import auth, make_token

        response = small.post("/api/v1/models", json=big, headers=auth(make_token("t-size")))
        error_envelope(response, 413, "PAYLOAD_TOO_LARGE")

        def chunks():  # no Content-Length: the streamed body is counted as it arrives
            for _ in range(5):
                yield b"x" * 500

        streamed = small.post("/api/v1/models", content=chunks(),
                              headers={**auth(make_token("t-size")), "content-type": "application/json"})
        error_envelope(streamed, 413, "PAYLOAD_TOO_LARGE")


def test_unhandled_error_is_500_without_internals(tmp_path):
    settings = make_settings(tmp_path)
    app = create_app(settings)

    def explode():
        raise RuntimeError(f"boom at /secret/path with {TEST_SECRET}")

    app.add_api_route("/api/v1/_explode", explode)
    with TestClient(app, raise_server_exceptions=False) as c:
        response = c.get("/api/v1/_explode")
    error = error_envelope(response, 500, "INTERNAL_ERROR")
    text = response.text
    assert "Traceback" not in text and "/secret/path" not in text and TEST_SECRET not in text
    assert "boom" not in error["message"]


def _audit_rows(client, tenant: str, want: int) -> list[dict]:
    audit = client.app.state.audit
    for _ in range(50):  # the writer thread flushes every 0.2 s
        rows = audit.records(tenant_id=tenant)
        if len(rows) >= want:
            return rows
        time.sleep(0.1)
    return audit.records(tenant_id=tenant)


def test_writes_and_refusals_are_audited_reads_are_not(client, tenant, headers):
    from tests.utils.tokens import auth, make_token

    assert client.post("/api/v1/models", json={"name": "audited"}, headers=headers).status_code == 201
    assert client.get("/api/v1/models", headers=headers).status_code == 200
    assert client.get("/api/v1/models/00000000-0000-0000-0000-000000000000", headers=headers).status_code == 404
    read_only = auth(make_token(tenant, scopes=("models:read",)))
    assert client.post("/api/v1/models", json={"name": "nope"}, headers=read_only).status_code == 403
    rows = _audit_rows(client, tenant, 3)
    summary = sorted((r["method"], r["status"], r["error_code"]) for r in rows)
    assert summary == [("GET", 404, "MODEL_NOT_FOUND"), ("POST", 201, None), ("POST", 403, "FORBIDDEN")]
    assert all(r["subject"] == f"user@{tenant}" and r["request_id"].startswith("req-") for r in rows)


@pytest.mark.parametrize("hours", ["inf", "INF", "-inf", "nan"])
def test_a_non_finite_number_is_400_and_echoed_as_text(client, headers, hours):
    """Found by the schemathesis run: ``?period_hours=INF`` made the error itself unwritable (500)."""
    error = error_envelope(client.get(f"/api/v1/monitoring/m-1/performance?period_hours={hours}", headers=headers),
                           400, "INVALID_REQUEST")
    assert error["details"]["window_hours"].lower() in ("inf", "-inf", "nan")
