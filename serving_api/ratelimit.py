"""Per-tenant token buckets: rate and burst from settings, with per-tenant overrides.

Called from the authentication dependency on the event loop (one thread), so no lock.
"""

from __future__ import annotations

import math
import time

from serving_api.errors import ApiError
from serving_api.settings import Settings


class RateLimiter:
    def __init__(self, settings: Settings, clock=time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self._buckets: dict[str, list[float]] = {}  # tenant -> [tokens, last refill time]

    def check(self, tenant_id: str) -> None:
        limit = self.settings.rate_limit_for(tenant_id)
        now = self.clock()
        bucket = self._buckets.get(tenant_id)
        if bucket is None:
            bucket = self._buckets[tenant_id] = [float(limit.burst), now]
        tokens = min(float(limit.burst), bucket[0] + (now - bucket[1]) * limit.rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return
        bucket[0] = tokens
        retry_after = max(1, math.ceil((1.0 - tokens) / limit.rate))
        raise ApiError(
            "RATE_LIMITED",
            f"rate limit of {limit.rate:g} requests/s (burst {limit.burst}) exceeded for this tenant",
            {"retry_after_s": retry_after},
            {"Retry-After": str(retry_after)},
        )
