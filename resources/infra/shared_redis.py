"""Redis for state the API processes share but can do without (rate-limit buckets, model change
counters): calls time out after ``TIMEOUT_S``, and after a failure Redis is not asked again for
``RETRY_S`` (each call answers None at once: its caller falls back to what one process knows).
One warning when Redis stops answering and one when it answers again."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

log = logging.getLogger(__name__)

TIMEOUT_S = 0.05
RETRY_S = 5.0
T = TypeVar("T")


class FailFastRedis:
    def __init__(self, url: str, what: str, fallback: str, clock: Callable[[], float] = time.monotonic) -> None:
        """``what``: whose state (for the log); ``fallback``: what the callers do meanwhile."""
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S)
        self.what, self.fallback, self.clock = what, fallback, clock
        self._down_until = 0.0

    def call(self, fn: Callable[[], T]) -> T | None:
        """``fn()`` (a call on ``client``), or None while Redis does not answer."""
        import redis

        if self.clock() < self._down_until:
            return None
        try:
            result = fn()
        except redis.RedisError as exc:
            if self._down_until == 0.0:
                log.warning("%s: Redis did not answer (%s); %s until it does", self.what, type(exc).__name__, self.fallback)
            self._down_until = self.clock() + RETRY_S
            return None
        if self._down_until:
            log.warning("%s: Redis answers again", self.what)
            self._down_until = 0.0
        return result
