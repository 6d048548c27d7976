"""The unauthenticated budget per client address: IPv6 clients are one bucket per /64 (so an
attacker cannot rotate addresses within its own prefix), and the table of buckets stays bounded."""

from __future__ import annotations

import pytest

from serving_api.errors import ApiError
from serving_api.ratelimit import local as ratelimit
from serving_api.ratelimit.local import RateLimiter, address_key


@pytest.fixture
def limiter(settings):
    now = [0.0]
    limiter = RateLimiter(settings.model_copy(update={"unauthenticated_rate_per_second": 1.0, "unauthenticated_burst": 3}),
                          clock=lambda: now[0])
    limiter.now = now
    return limiter


def test_ipv6_addresses_of_one_prefix_share_a_bucket(limiter):
    for host in ("2001:db8:1:2::1", "2001:db8:1:2::dead", "2001:db8:1:2:ffff::7"):
        limiter.charge_address(host)
    with pytest.raises(ApiError) as refused:
        limiter.check_address("2001:db8:1:2::beef")
    assert refused.value.code == "RATE_LIMITED" and refused.value.headers["Retry-After"] == "1"
    limiter.check_address("2001:db8:1:3::1")  # another /64
    assert address_key("::ffff:192.0.2.5") == address_key("192.0.2.5") == "192.0.2.5"
    limiter.now[0] += 1.0  # one token back
    limiter.check_address("2001:db8:1:2::beef")


def test_the_bucket_table_stays_bounded(limiter, monkeypatch):
    monkeypatch.setattr(ratelimit, "MAX_ADDRESSES", 100)
    for i in range(1000):
        limiter.charge_address(f"10.0.{i // 256}.{i % 256}")
    assert len(limiter._addresses) <= 100
    for _ in range(3):
        limiter.charge_address("10.0.3.231")
    with pytest.raises(ApiError):  # the latest spender is remembered
        limiter.check_address("10.0.3.231")
