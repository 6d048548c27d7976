"""A circuit breaker for a backing server (MLflow): after a transport failure, calls fail at once
for ``cooldown_s`` instead of each waiting out the client's timeout, then one call at a time
probes the server until one gets through.

Why: a hung server (accepting connections, never answering) holds every caller for the client's
timeout; under load the API's threads fill up with waits and requests that need no registry at
all queue behind them. With the breaker, the first caller learns of the failure in one timeout
and the others in no time, each with a 503 saying when to retry.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Breaker:
    def __init__(self, cooldown_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.cooldown_s, self._clock = cooldown_s, clock
        self._lock = threading.Lock()
        self._open_until = 0.0  # 0: closed
        self._prober: int | None = None  # the thread whose call probes the server (it may nest calls)

    def admit(self) -> float | None:
        """None: the call may go ahead (closed, or this caller probes); else the seconds until the
        next probe may run (the caller fails at once)."""
        with self._lock:
            if not self._open_until:
                return None
            me = threading.get_ident()
            if self._prober == me:
                return None
            now = self._clock()
            if now < self._open_until or self._prober is not None:
                return max(self._open_until - now, 1.0)
            self._prober = me
            return None

    def succeeded(self) -> None:
        with self._lock:
            self._open_until, self._prober = 0.0, None

    def failed(self) -> None:
        with self._lock:
            self._open_until, self._prober = self._clock() + self.cooldown_s, None

    def settle(self) -> None:
        """The call ended without a verdict (interrupted): another caller may probe."""
        with self._lock:
            if self._prober == threading.get_ident():
                self._prober = None

    @property
    def is_open(self) -> bool:
        with self._lock:
            return bool(self._open_until)


_BREAKERS: dict[str, Breaker] = {}
_BREAKERS_LOCK = threading.Lock()


def breaker_for(address: str, cooldown_s: float = 5.0) -> Breaker:
    """One breaker per server address in this process (every client of that server shares it)."""
    with _BREAKERS_LOCK:
        found = _BREAKERS.get(address)
        if found is None:
            found = _BREAKERS[address] = Breaker(cooldown_s)
        return found
