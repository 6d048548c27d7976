"""Token buckets: per tenant (rate and burst from settings, with per-tenant overrides), and per
client address for unauthenticated traffic (``settings.unauthenticated_*``).

An address pays one token for each request that fails authentication (401) and each request to
an unknown route or method (404, 405), charged by ``serving_api.middleware``; successful
authentication costs it nothing. Once its bucket is empty, its requests that would need a token
verified are answered 429 before any verification (a token verified recently still passes: see
``serving_api.deps.authenticate``). IPv6 addresses are bucketed by their /64, which one client
usually holds whole. Behind a reverse proxy the address is the one uvicorn takes from
X-Forwarded-For for trusted proxies (``--forwarded-allow-ips``), else the proxy's.

Called on the event loop (one thread), so no lock.
"""

from __future__ import annotations

import ipaddress
import math
import time

from mlservice.config.settings import Settings
from serving_api.errors import ApiError

# Address buckets kept at most; past it, full buckets (equivalent to none) are dropped first.
MAX_ADDRESSES = 100_000


def address_key(host: str | None) -> str:
    """The bucket of a client address: the address itself, or its /64 for IPv6."""
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host[:64]
    if address.version == 6:
        if address.ipv4_mapped is not None:  # ::ffff:a.b.c.d is that IPv4 client
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def rate_limited(message: str, retry_after: int) -> ApiError:
    return ApiError("RATE_LIMITED", message, {"retry_after_s": retry_after}, {"Retry-After": str(retry_after)})


class RateLimiter:
    def __init__(self, settings: Settings, clock=time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self._buckets: dict[str, list[float]] = {}  # tenant -> [tokens, last refill time]
        self._addresses: dict[str, list[float]] = {}  # address key -> [tokens, last refill time]

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
        raise rate_limited(
            f"rate limit of {limit.rate:g} requests/s (burst {limit.burst}) exceeded for this tenant", retry_after
        )

    # -- unauthenticated traffic, per client address --
    def _address_tokens(self, key: str) -> float:
        """The address's tokens now (refilled); a full bucket for an address never charged."""
        rate, burst = self.settings.unauthenticated_rate_per_second, float(self.settings.unauthenticated_burst)
        bucket = self._addresses.get(key)
        if bucket is None:
            return burst
        now = self.clock()
        bucket[0], bucket[1] = min(burst, bucket[0] + (now - bucket[1]) * rate), now
        return bucket[0]

    def check_address(self, host: str | None) -> None:
        """429 if the address has spent its unauthenticated budget (takes nothing)."""
        key = address_key(host)
        tokens = self._address_tokens(key)
        if tokens >= 1.0:
            return
        rate = self.settings.unauthenticated_rate_per_second
        raise rate_limited(
            f"too many unauthenticated requests from this address ({rate:g}/s, burst "
            f"{self.settings.unauthenticated_burst})", max(1, math.ceil((1.0 - tokens) / rate)),
        )

    def charge_address(self, host: str | None) -> None:
        """One failed-authentication or unknown-route request from ``host`` (never below zero)."""
        key = address_key(host)
        tokens = self._address_tokens(key)
        if self._addresses.pop(key, None) is None and len(self._addresses) >= MAX_ADDRESSES:
            self._prune_addresses()
        self._addresses[key] = [max(0.0, tokens - 1.0), self.clock()]  # (re)inserted last: oldest first

    def _prune_addresses(self) -> None:
        """Drop full buckets; if that frees too little, the least recently charged tenth."""
        burst = float(self.settings.unauthenticated_burst)
        for key in [k for k in self._addresses if self._address_tokens(k) >= burst]:
            del self._addresses[key]
        if len(self._addresses) >= MAX_ADDRESSES * 9 // 10:
            for key in list(self._addresses)[: MAX_ADDRESSES // 10]:
                del self._addresses[key]
