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

    def check(self, tenant_id: str, cost: float = 1.0) -> None:
        """Take ``cost`` tokens (one per request; predictions pay one per row) or raise 429."""
        limit = self.settings.rate_limit_for(tenant_id)
        cost = min(float(cost), float(limit.burst))  # a request larger than the burst needs a full bucket
        now = self.clock()
        bucket = self._buckets.get(tenant_id)
        if bucket is None:
            bucket = self._buckets[tenant_id] = [float(limit.burst), now]
        tokens = min(float(limit.burst), bucket[0] + (now - bucket[1]) * limit.rate)
        bucket[1] = now
        if tokens >= cost:
            bucket[0] = tokens - cost
            return
        bucket[0] = tokens
        retry_after = max(1, math.ceil((cost - tokens) / limit.rate))
        raise ApiError(
            "RATE_LIMITED",
            f"rate limit of {limit.rate:g} requests/s (burst {limit.burst}) exceeded for this tenant",
            {"retry_after_s": retry_after},
            {"Retry-After": str(retry_after)},
        )
