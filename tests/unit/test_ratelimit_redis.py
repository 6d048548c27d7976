"""Rate limits shared by API processes through Redis (serving_api/ratelimit/shared.py), on the
session's real Redis: two limiters stand for two API workers or replicas. A tenant's burst is
spent once across both, tenants do not share, the unauthenticated budget of an address is shared,
buckets expire once refilled, and with Redis away each process falls back to its own buckets
within the timeout instead of failing requests."""

from __future__ import annotations

import time
import uuid

import pytest

from resources.infra.shared_redis import TIMEOUT_S
from serving_api.errors import ApiError
from serving_api.ratelimit.shared import RedisRateLimiter


@pytest.fixture
def limited(settings):
    return settings.model_copy(update={"rate_limit_per_second": 0.5, "rate_limit_burst": 10,
                                       "unauthenticated_rate_per_second": 0.5, "unauthenticated_burst": 5})


def _taken(limiter, tenant: str, times: int) -> int:
    ok = 0
    for _ in range(times):
        try:
            limiter.check(tenant)
            ok += 1
        except ApiError:
            pass
    return ok


def test_two_processes_spend_one_tenant_burst(limited, redis_server):
    first, second = (RedisRateLimiter(limited, redis_server.url()) for _ in range(2))
    tenant, other = f"t-{uuid.uuid4().hex[:6]}", f"t-{uuid.uuid4().hex[:6]}"
    assert _taken(first, tenant, 6) == 6 and _taken(second, tenant, 6) == 4  # 10 in all, not 10 each
    with pytest.raises(ApiError) as refused:
        first.check(tenant)
    assert refused.value.code == "RATE_LIMITED" and int(refused.value.headers["Retry-After"]) >= 1
    assert _taken(second, other, 10) == 10  # another tenant's bucket is its own
    ttl = redis_server.client().pttl(f"mlservice:rl:tenant:{tenant}")
    assert 0 < ttl <= (10 / 0.5 + 1) * 1000  # gone once it would be full again


def test_a_predictions_cost_in_rows_is_taken_across_processes(limited, redis_server):
    first, second = (RedisRateLimiter(limited, redis_server.url()) for _ in range(2))
    tenant = f"t-{uuid.uuid4().hex[:6]}"
    first.check(tenant, cost=7)
    with pytest.raises(ApiError):
        second.check(tenant, cost=4)
    second.check(tenant, cost=3)


def test_an_address_unauthenticated_budget_is_shared(limited, redis_server):
    first, second = (RedisRateLimiter(limited, redis_server.url()) for _ in range(2))
    address = f"198.51.100.{uuid.uuid4().int % 250}"
    for _ in range(3):
        first.charge_address(address)
    second.check_address(address)  # 2 left
    for _ in range(5):
        second.charge_address(address)  # down to 0, never below
    with pytest.raises(ApiError):
        first.check_address(address)
    first.check_address("203.0.113.9")  # another address is not charged


def test_redis_away_falls_back_to_per_process_buckets_within_the_timeout(limited):
    from mlservice.launcher.processes import free_port

    limiter = RedisRateLimiter(limited, f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    began = time.perf_counter()
    assert _taken(limiter, "t-away", 12) == 10  # the process's own burst
    assert time.perf_counter() - began < 2 * TIMEOUT_S + 0.5  # one failed try, then no more until RETRY_S
