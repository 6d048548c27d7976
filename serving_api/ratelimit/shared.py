"""The rate limiter's buckets in Redis, shared by every API process and replica (``MLSERVICE_REDIS_URL``).

The same token buckets as ``serving_api.ratelimit.local.RateLimiter`` (per tenant; per client address
for unauthenticated traffic), each a Redis hash taken and refilled by one Lua script, so processes
never interleave a read and a write; the clock is Redis's own (``TIME``), so the processes'
clocks do not matter. A bucket expires once it would be full again: memory is bounded by the
clients active in the last burst/rate seconds (no pruning of our own).

One round trip a request (~0.1 ms on loopback), on the event loop. If Redis does not answer
(``resources.infra.shared_redis``: a 50-ms timeout, then 5 s without asking) the process falls back to
its own buckets (the limits then hold per process, as with one worker) and says so in its log,
once per outage. A limiter that stopped every request while Redis is away would make a cache an
availability dependency of predictions.
"""

from __future__ import annotations

import math
import time

from mlservice.config.settings import Settings
from resources.infra.shared_redis import FailFastRedis
from serving_api.ratelimit.local import RateLimiter, address_key, rate_limited

# KEYS[1]: the bucket. ARGV: rate/s, burst, cost, floor (1: take down to 0 at most, always "ok").
# Returns {ok, tokens after} (tokens as text: Lua numbers come back as integers otherwise).
_TAKE = """
local rate, burst, cost, floor = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4] == '1'
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens, ts = tonumber(b[1]), tonumber(b[2])
if tokens == nil or ts == nil then tokens, ts = burst, now end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local ok = 0
if tokens >= cost then tokens, ok = tokens - cost, 1 elseif floor then tokens, ok = 0, 1 end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'ts', string.format('%.6f', now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
return {ok, string.format('%.6f', tokens)}
"""


class RedisRateLimiter(RateLimiter):
    def __init__(self, settings: Settings, url: str, clock=time.monotonic) -> None:
        super().__init__(settings, clock)
        self._redis = FailFastRedis(url, "rate limits", "per-process buckets", clock)
        self._take = self._redis.client.register_script(_TAKE)

    def _shared(self, key: str, rate: float, burst: float, cost: float, floor: bool = False) -> tuple[bool, float] | None:
        """(ok, tokens left) from the shared bucket; None while Redis is away (use our own)."""
        taken = self._redis.call(lambda: self._take(keys=[key], args=[rate, burst, cost, 1 if floor else 0]))
        if taken is None:
            return None
        ok, tokens = taken
        return bool(int(ok)), float(tokens)

    def check(self, tenant_id: str, cost: float = 1.0) -> None:
        limit = self.settings.rate_limit_for(tenant_id)
        cost = min(float(cost), float(limit.burst))
        taken = self._shared(f"mlservice:rl:tenant:{tenant_id}", limit.rate, float(limit.burst), cost)
        if taken is None:
            return super().check(tenant_id, cost)
        ok, tokens = taken
        if not ok:
            raise rate_limited(f"rate limit of {limit.rate:g} requests/s (burst {limit.burst}) exceeded for this tenant",
                                max(1, math.ceil((cost - tokens) / limit.rate)))

    def check_address(self, host: str | None) -> None:
        rate, burst = self.settings.unauthenticated_rate_per_second, float(self.settings.unauthenticated_burst)
        taken = self._shared(f"mlservice:rl:address:{address_key(host)}", rate, burst, 0.0)
        if taken is None:
            return super().check_address(host)
        if taken[1] < 1.0:
            raise rate_limited(f"too many unauthenticated requests from this address ({rate:g}/s, burst "
                                f"{self.settings.unauthenticated_burst})", max(1, math.ceil((1.0 - taken[1]) / rate)))

    def charge_address(self, host: str | None) -> None:
        rate, burst = self.settings.unauthenticated_rate_per_second, float(self.settings.unauthenticated_burst)
        if self._shared(f"mlservice:rl:address:{address_key(host)}", rate, burst, 1.0, floor=True) is None:
            super().charge_address(host)
