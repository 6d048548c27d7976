"""Token factories for tests: valid tokens per tenant and every kind of forged one."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt

from serving_api.auth import DEFAULT_TOKEN_SCOPES

TEST_SECRET = "test-secret-0123456789abcdef0123456789abcdef"


def make_token(
    tenant_id: str = "tenant-a",
    *,
    scopes: tuple[str, ...] | str = DEFAULT_TOKEN_SCOPES,
    secret: str = TEST_SECRET,
    algorithm: str = "HS256",
    drop: tuple[str, ...] = (),
    **claims: Any,
) -> str:
    now = int(time.time())
    payload: dict[str, Any] = {
        "sub": f"user@{tenant_id}",
        "tenant_id": tenant_id,
        "scope": scopes if isinstance(scopes, str) else " ".join(scopes),
        "iat": now,
        "exp": now + 600,
    }
    payload.update(claims)
    for key in drop:
        payload.pop(key, None)
    return jwt.encode(payload, secret, algorithm=algorithm)


def unsigned_token(tenant_id: str = "tenant-a") -> str:
    """An ``alg: none`` token: header and payload, empty signature."""

    def b64(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    payload = {"sub": "mallory", "tenant_id": tenant_id, "scope": "admin", "exp": int(time.time()) + 600}
    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(payload)}."


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
