"""Authentication and scopes: every forged-token kind is refused with 401 and the Bearer
challenge; every route except health is authenticated; a missing scope is 403."""

from __future__ import annotations

import time

import jwt
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from serving_api.main import create_app
from tests.conftest import make_settings
from tests.utils.api import error_envelope
from tests.utils.tokens import TEST_SECRET, auth, make_token, unsigned_token

PUBLIC_PATHS = {
    "/health/live", "/health/ready", "/metrics", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json",
    "/v2", "/v2/health/live", "/v2/health/ready",  # Open Inference Protocol health and server metadata
    "/docs-assets",  # the docs pages' scripts and styles (serving_api/docs.py): static files, no data
}


def _assert_unauthorized(response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    error_envelope(response, 401, "UNAUTHORIZED")


FORGED = {
    "alg_none": unsigned_token,
    "bad_signature": lambda: make_token(secret="another-secret-0123456789abcdef0123456789"),
    "expired": lambda: make_token(exp=int(time.time()) - 60),
    "not_yet_valid": lambda: make_token(nbf=int(time.time()) + 600),
    "missing_exp": lambda: make_token(drop=("exp",)),
    "missing_sub": lambda: make_token(drop=("sub",)),
    "missing_tenant": lambda: make_token(drop=("tenant_id",)),
    "tenant_with_path_chars": lambda: make_token(tenant_id="../etc"),
    "hs512_not_configured": lambda: make_token(algorithm="HS512"),
    "garbage": lambda: "not.a.jwt",
    "truncated_signature": lambda: make_token()[:-5],
}


@pytest.mark.parametrize("kind", sorted(FORGED))
def test_forged_tokens_are_refused(client, kind):
    _assert_unauthorized(client.get("/api/v1/models", headers=auth(FORGED[kind]())))


@pytest.mark.parametrize(
    "header", ["", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", f"Token {make_token()}", "bearer"]
)
def test_malformed_authorization_headers(client, header):
    _assert_unauthorized(client.get("/api/v1/models", headers={"Authorization": header}))


def test_valid_token_is_accepted(client, headers):
    response = client.get("/api/v1/models", headers=headers)
    assert response.status_code == 200
    assert response.json() == {"data": [], "count": 0, "next_cursor": None}


def all_routes(routes) -> list:
    """The app's routes, descending into included routers."""
    found = []
    for route in routes:
        inner = getattr(route, "original_router", None)
        found.extend(all_routes(inner.routes) if inner is not None else [route])
    return found


def test_every_route_but_health_requires_a_token(client):
    """Walk the app's routes: each non-public one answers 401 without a token."""
    checked = 0
    for route in all_routes(client.app.routes):
        if not isinstance(route, APIRoute) or route.path in PUBLIC_PATHS:
            continue
        path = route.path.replace("{model_id}", "00000000-0000-0000-0000-000000000000")
        for placeholder in ("{job_id}", "{ensemble_id}", "{name}", "{version}"):
            path = path.replace(placeholder, "x")
        for method in route.methods:
            response = client.request(method, path, json={})
            _assert_unauthorized(response)
            checked += 1
    assert checked >= 6  # the models routes at least


def test_public_routes_are_exactly_health_and_metrics(client):
    api_routes = {r.path for r in all_routes(client.app.routes) if hasattr(r, "path")}
    unauthenticated = api_routes - {p for p in api_routes if p.startswith(("/api/", "/v2/models"))}
    assert unauthenticated <= PUBLIC_PATHS


def test_missing_scope_is_forbidden(client, tenant):
    read_only = auth(make_token(tenant, scopes=("models:read",)))
    response = client.post("/api/v1/models", json={"name": "m"}, headers=read_only)
    assert error_envelope(response, 403, "FORBIDDEN")["details"] == {"required_scope": "models:write"}
    assert client.get("/api/v1/models", headers=read_only).status_code == 200
    no_scope = auth(make_token(tenant, scopes=""))
    assert client.get("/api/v1/models", headers=no_scope).status_code == 403


def test_admin_scope_grants_everything(client, tenant):
    admin = auth(make_token(tenant, scopes=("admin",)))
    assert client.post("/api/v1/models", json={"name": "m"}, headers=admin).status_code == 201


@pytest.fixture(scope="module")
def rs256_client(tmp_path_factory, rsa_pems):
    private, public = rsa_pems
    data_dir = tmp_path_factory.mktemp("rs256")
    settings = make_settings(
        data_dir, jwt_secret=None, jwt_algorithms=["RS256"], jwt_public_key=public,
        jwt_audience="mlservice-api", jwt_issuer="https://idp.example",
    )
    with TestClient(create_app(settings)) as client:
        yield client, private, public


def _rs_token(private: str, **claims) -> str:
    payload = {"sub": "u", "tenant_id": "t-rs", "scope": "models:read", "exp": int(time.time()) + 600,
               "aud": "mlservice-api", "iss": "https://idp.example"}
    payload.update(claims)
    return jwt.encode(payload, private, algorithm="RS256")


def test_rs256_with_audience_and_issuer(rs256_client):
    client, private, _ = rs256_client
    assert client.get("/api/v1/models", headers=auth(_rs_token(private))).status_code == 200
    _assert_unauthorized(client.get("/api/v1/models", headers=auth(_rs_token(private, aud="someone-else"))))
    _assert_unauthorized(client.get("/api/v1/models", headers=auth(_rs_token(private, iss="https://evil.example"))))


def test_algorithm_swap_is_refused(rs256_client):
    """An HS256 token signed with the RS256 public key as the HMAC secret must not pass."""
    client, _, public = rs256_client
    payload = {"sub": "u", "tenant_id": "t-rs", "scope": "admin", "exp": int(time.time()) + 600,
               "aud": "mlservice-api", "iss": "https://idp.example"}
    import base64
    import hashlib
    import hmac
    import json

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    signing_input = f"{b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}.{b64(json.dumps(payload).encode())}"
    signature = hmac.new(public.encode(), signing_input.encode(), hashlib.sha256).digest()
    _assert_unauthorized(client.get("/api/v1/models", headers=auth(f"{signing_input}.{b64(signature)}")))
    # And an HS256 token with the shared test secret means nothing to an RS256 deployment.
    _assert_unauthorized(client.get("/api/v1/models", headers=auth(make_token("t-rs", secret=TEST_SECRET))))


def test_verified_tokens_are_remembered_only_until_they_expire(tmp_path):
    from serving_api.auth import TokenVerifier
    from serving_api.errors import ApiError

    verifier = TokenVerifier(make_settings(tmp_path))
    token = make_token("cache-t", exp=int(time.time()) + 30)
    first = verifier.verify(token)
    assert verifier.verify(token) is first  # answered from the cache
    # the same claims under another signature are no cache hit
    forged = make_token("cache-t", exp=int(time.time()) + 30, secret="another-secret-0123456789abcdef0123456789")
    with pytest.raises(ApiError) as refused:
        verifier.verify(forged)
    assert refused.value.code == "UNAUTHORIZED"
    # a token past its exp but inside PyJWT's 5 s leeway verifies, and is never served from the cache
    lapsed = make_token("cache-t", exp=int(time.time()) - 2)
    once = verifier.verify(lapsed)
    assert verifier.verify(lapsed) is not once and verifier.verify(lapsed) == once
