"""The platform's own Redis (mlservice/launcher/redis_server.py), as the tests' fixture starts it: loopback
only, no Unix socket, a password (a client without it is refused), the password only in an
owner-only file (not on the command line)."""

from __future__ import annotations

import stat

import pytest
import redis


def test_redis_listens_on_loopback_only_and_wants_the_password(redis_server):
    client = redis_server.client()
    assert client.config_get("bind")["bind"] == "127.0.0.1"
    assert client.config_get("unixsocket")["unixsocket"] == ""
    assert client.config_get("protected-mode")["protected-mode"] == "yes"
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=redis_server.port, socket_timeout=2).ping()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=redis_server.port, password="not-it", socket_timeout=2).ping()
    config = redis_server.home / "redis.conf"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert redis_server.password() not in " ".join(redis_server.argv())
