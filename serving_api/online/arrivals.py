"""Prediction requests on their way to a micro-batcher, counted so that a batcher lingers only
while another request could still join its batch.

A batcher that holds the requests already queued waits up to ``max_wait_ms`` for more: under
load that turns many small predict calls into a few large ones. But with few callers per process
(concurrency 16 over two API workers: 8 each) every caller is often in the batch already, and the
wait is pure idle time on every round trip. The request middleware opens a ticket for each
prediction request as it arrives (``begin``); the request gives it up when it enters a batcher's
queue (``arrived``) or when it ends without one (``end``). A lingering batcher stops waiting as
soon as no ticket is open, and is woken when the last one closes.

Everything here runs on the event loop's thread (the middleware and the batchers' ``predict``
are coroutines), so a plain counter is enough.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar

# The request paths whose POSTs can reach a micro-batcher: single and ensemble predictions, the
# Open Inference Protocol's infer.
PREDICTION_SUFFIXES = ("/predictions", "/predict", "/infer")


class Arrivals:
    def __init__(self) -> None:
        self.pending = 0
        self.opened = 0  # tickets ever opened, and closed by entering a batcher (for tests)
        self.joined = 0
        self._ticket: ContextVar[list[bool] | None] = ContextVar("mlservice_arrival", default=None)
        self._waiters: set[Callable[[], None]] = set()

    @staticmethod
    def counts(method: str, path: str) -> bool:
        return method == "POST" and path.endswith(PREDICTION_SUFFIXES)

    def begin(self) -> list[bool]:
        """Open the current request's ticket (in its own task: the ticket is that task's)."""
        ticket = [True]
        self.pending += 1
        self.opened += 1
        self._ticket.set(ticket)
        return ticket

    def arrived(self) -> None:
        """The current request entered a batcher's queue (its first one, for an ensemble)."""
        ticket = self._ticket.get()
        if ticket is not None and ticket[0]:
            self.joined += 1
            self._close(ticket)

    def end(self, ticket: list[bool]) -> None:
        """The request is answered; closes its ticket if no batcher took it."""
        if ticket[0]:
            self._close(ticket)

    def wait_for_none(self, wake: Callable[[], None]) -> None:
        """Call ``wake`` once when no ticket is open (at once if none is); ``forget`` cancels it."""
        if self.pending == 0:
            wake()
        else:
            self._waiters.add(wake)

    def forget(self, wake: Callable[[], None]) -> None:
        self._waiters.discard(wake)

    def _close(self, ticket: list[bool]) -> None:
        ticket[0] = False
        self.pending -= 1
        if self.pending == 0 and self._waiters:
            waiters, self._waiters = self._waiters, set()
            for wake in waiters:
                wake()
