"""A counter per model in Redis that every registry change bumps, so that every API process and
replica sees a promotion on its next prediction (``MLSERVICE_REDIS_URL``).

The API's model cache keeps version resolutions for ``resolve_ttl_s`` and refreshes them in the
background (stale-while-revalidate): a process that did not make a change learns of it only
then. With this, the registry (``resources.registry``: a version registered, a stage changed, a
model created; from the API or from a run) bumps ``mlservice:gen:<tenant>:<model>`` after the
change is written, and the cache reads the counter before it answers from a resolution: a counter
other than the one read with the resolution drops it (one GET, ~0.1 ms on loopback). The order
(write, then bump; read the counter, then the registry) means a reader never keeps a resolution
older than a bump it saw.

Redis is a cache here, not a dependency: a read that fails within ``TIMEOUT_S`` answers None
(the cache keeps its TTL behaviour) and Redis is not asked again for ``RETRY_S``; a bump that
fails is logged (the other processes then see the change within the TTL, as without Redis).
"""

from __future__ import annotations

import functools
import logging
import time

log = logging.getLogger(__name__)

TIMEOUT_S = 0.05
RETRY_S = 5.0


def _key(tenant_id: str, model_id: str) -> str:
    return f"mlservice:gen:{tenant_id}:{model_id}"


class ModelGenerations:
    def __init__(self, url: str) -> None:
        import redis

        self._redis = redis.Redis.from_url(url, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S)
        self._down_until = 0.0

    def bump(self, tenant_id: str, model_id: str) -> None:
        import redis

        try:
            self._redis.incr(_key(tenant_id, model_id))
        except redis.RedisError as exc:
            log.warning("model %s of %s changed but Redis did not take the news (%s): other API processes "
                        "see it within their resolution TTL", model_id, tenant_id, type(exc).__name__)

    def current(self, tenant_id: str, model_id: str) -> int | None:
        """The model's counter (0 before any change); None while Redis does not answer."""
        import redis

        if time.monotonic() < self._down_until:
            return None
        try:
            value = self._redis.get(_key(tenant_id, model_id))
        except redis.RedisError as exc:
            log.warning("model generations: Redis did not answer (%s); cached resolutions live out their TTL",
                        type(exc).__name__)
            self._down_until = time.monotonic() + RETRY_S
            return None
        self._down_until = 0.0
        return int(value or 0)


@functools.cache
def generations_for(url: str) -> ModelGenerations:
    """One client per process and URL (it holds a connection pool)."""
    return ModelGenerations(url)
