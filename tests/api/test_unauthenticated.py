"""Unauthenticated traffic: a per-address budget spent by failed authentications and unknown
routes (then 429 before any token is verified), unknown routes counted instead of audited, a
cached readiness answer, and a metrics method label that requests cannot grow."""

from __future__ import annotations

import asyncio
import re
import time
import uuid

import pytest
from fastapi.testclient import TestClient

from serving_api.health.readiness import ReadinessCache
from serving_api.main import create_app
from tests.conftest import make_settings
from tests.utils.api import error_envelope
from tests.utils.tokens import auth, make_token

BURST = 5


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    settings = make_settings(tmp_path_factory.mktemp("unauth"), unauthenticated_burst=BURST,
                             unauthenticated_rate_per_second=0.01, health_cache_s=60)
    application = create_app(settings)
    with TestClient(application):  # the lifespan: verifier, tables, audit writer
        yield application


def _from(app, address: str) -> TestClient:
    """A client on another address (the module's lifespan is already running)."""
    return TestClient(app, client=(address, 40000))


@pytest.fixture
def verifications(app, monkeypatch) -> list[str]:
    calls: list[str] = []
    verifier = app.state.verifier
    original = verifier._verify_claims
    monkeypatch.setattr(verifier, "_verify_claims", lambda token: calls.append(token) or original(token))
    return calls


def _metric(app, reason: str) -> float:
    match = re.search(rf'mlservice_unauthenticated_refusals_total{{reason="{reason}"}} (\S+)', app.state.metrics.render().decode())
    return float(match.group(1)) if match else 0.0


def _audited_paths(app, marker_client: TestClient) -> set[str]:
    """Audit rows' paths once the writer has caught up (a fresh audited 401 has landed)."""
    marker = f"marker-{uuid.uuid4().hex[:8]}"
    assert marker_client.get("/api/v1/models", headers={"X-Request-ID": marker}).status_code == 401
    audit, deadline = app.state.audit, time.monotonic() + 10
    while time.monotonic() < deadline:
        rows = audit.records(limit=10_000)
        if any(r["request_id"] == marker for r in rows):
            return {r["path"] for r in rows}
        time.sleep(0.05)
    raise AssertionError("the audit writer did not catch up")


def test_failed_authentications_spend_the_address_budget_then_429_before_verifying(app, verifications):
    attacker, bystander = _from(app, "203.0.113.7"), _from(app, "198.51.100.9")
    known = auth(make_token("tenant-known"))
    assert attacker.get("/api/v1/models", headers=known).status_code == 200  # verified before the flood
    forged = auth(make_token("tenant-known", secret="forged-secret-0123456789abcdef0123456789"))
    assert [attacker.get("/api/v1/models", headers=forged).status_code for _ in range(BURST)] == [401] * BURST
    verified = len(verifications)

    refused = attacker.get("/api/v1/models", headers=forged)
    error_envelope(refused, 429, "RATE_LIMITED")
    assert int(refused.headers["retry-after"]) >= 1
    fresh = auth(make_token("tenant-new"))  # valid, but never verified: 429 without verifying it
    assert attacker.get("/api/v1/models", headers=fresh).status_code == 429
    assert len(verifications) == verified  # nothing was verified for the refused calls
    assert attacker.get("/api/v1/models", headers=known).status_code == 200  # remembered token: no verification needed
    assert bystander.get("/api/v1/models", headers=forged).status_code == 401  # other addresses keep their budget
    assert bystander.get("/api/v1/models", headers=fresh).status_code == 200
    assert _metric(app, "address_limited") >= 2


def test_unknown_routes_spend_the_budget_and_are_counted_not_audited(app):
    prober = _from(app, "192.0.2.44")
    before = _metric(app, "unknown_route")
    paths = [f"/api/v1/probe-{uuid.uuid4().hex[:8]}" for _ in range(BURST)]
    assert [prober.get(path).status_code for path in paths] == [404] * BURST
    assert prober.request("BREW", "/api/v1/models").status_code == 405  # an unknown method counts the same
    assert _metric(app, "unknown_route") == before + BURST + 1
    assert prober.get("/api/v1/models", headers=auth("forged")).status_code == 429  # the budget is spent
    audited = _audited_paths(app, _from(app, "192.0.2.200"))
    assert not audited & set(paths)


def test_readiness_probes_once_per_interval(app):
    probes = []

    async def probe(settings, registry):
        probes.append(1)
        await asyncio.sleep(0.01)
        return {"mlflow": "ok", "dagster": "ok", "ray": "unreachable (ConnectError)"}

    app.state.readiness = ReadinessCache(app.state.settings, app.state.registry, probe=probe)
    client = _from(app, "192.0.2.1")
    answers = [client.get("/health/ready") for _ in range(50)]
    assert len(probes) == 1
    assert {a.status_code for a in answers} == {503} and answers[-1].json()["unavailable"] == ["ray"]


def test_concurrent_readiness_calls_share_one_probe_and_a_stale_result_is_probed_again(settings):
    now, probes = [0.0], []

    async def probe(_settings, _registry):
        probes.append(now[0])
        await asyncio.sleep(0.05)
        return {"mlflow": "ok"}

    cache = ReadinessCache(settings.model_copy(update={"health_cache_s": 2.0}), None, probe=probe, clock=lambda: now[0])

    async def main():
        await asyncio.gather(*(cache.components() for _ in range(20)))
        now[0] = 1.9
        await cache.components()
        now[0] = 2.5
        await cache.components()

    asyncio.run(main())
    assert probes == [0.0, 2.5]


def test_made_up_methods_do_not_grow_the_metrics(app):
    client = _from(app, "192.0.2.2")
    for i in range(100):
        client.request(f"X{i}METHOD", "/health/live")
    text = app.state.metrics.render().decode()
    methods = set(re.findall(r'mlservice_http_requests_total\{method="([^"]*)"', text))
    assert "OTHER" in methods
    assert methods <= {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "OTHER"}
    assert not re.search(r'method="X\d+METHOD"', text)
