"""A validly signed token that lives longer than settings.max_token_lifetime_s (one day by
default) is refused by the API with 401 and the Bearer challenge."""

from __future__ import annotations

import time

from tests.utils.tokens import auth, make_token


def test_a_long_lived_token_is_refused(client, tenant):
    now = int(time.time())
    for token in (make_token(tenant, iat=now, exp=now + 86_400 + 60), make_token(tenant, drop=("iat",), exp=now + 30 * 86_400)):
        refused = client.get("/api/v1/models", headers=auth(token))
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
        assert refused.json()["error"]["code"] == "UNAUTHORIZED"
    day = client.get("/api/v1/models", headers=auth(make_token(tenant, iat=now, exp=now + 86_400)))
    assert day.status_code == 200
