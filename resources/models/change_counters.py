"""A counter per model in Redis that every registry change bumps, so that every API process and
replica sees a promotion on its next prediction (``MLSERVICE_REDIS_URL``).

The API's model cache keeps version resolutions for ``resolve_ttl_s`` and refreshes them in the
background (stale-while-revalidate): a process that did not make a change learns of it only
then. With this, the registry (``resources.models.registry``: a version registered, a stage changed;
from the API or from a run) bumps ``mlservice:gen:<tenant>:<model>`` after the
change is written, and the cache reads the counter before it answers from a resolution: a counter
other than the one read with the resolution drops it (one GET, ~0.1 ms on loopback). The order
(write, then bump; read the counter, then the registry) means a reader never keeps a resolution
older than a bump it saw.

Redis is a cache here, not a dependency (``resources.infra.shared_redis``): a read that fails answers
None at once (the cache keeps its TTL behaviour) until Redis answers again; a bump that
fails is logged (the other processes then see the change within the TTL, as without Redis).
"""

from __future__ import annotations

import functools
import logging

from resources.infra.shared_redis import FailFastRedis

log = logging.getLogger(__name__)


def _key(tenant_id: str, model_id: str) -> str:
    return f"mlservice:gen:{tenant_id}:{model_id}"


class ModelGenerations:
    def __init__(self, url: str) -> None:
        self._redis = FailFastRedis(url, "model generations", "cached resolutions live out their TTL")

    def bump(self, tenant_id: str, model_id: str) -> None:
        import redis

        try:
            self._redis.client.incr(_key(tenant_id, model_id))  # every change tries: a lost one is logged
        except redis.RedisError as exc:
            log.warning("model %s of %s changed but Redis did not take the news (%s): other API processes "
                        "see it within their resolution TTL", model_id, tenant_id, type(exc).__name__)

    def current(self, tenant_id: str, model_id: str) -> int | None:
        """The model's counter (0 before any change); None while Redis does not answer."""
        value = self._redis.call(lambda: self._redis.client.get(_key(tenant_id, model_id)) or 0)
        return None if value is None else int(value)


@functools.cache
def generations_for(url: str) -> ModelGenerations:
    """One client per process and URL (it holds a connection pool)."""
    return ModelGenerations(url)
