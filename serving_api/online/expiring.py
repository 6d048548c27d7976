"""Keys remembered for a while: the model cache's negative entries (unknown ids, versions, names,
and versions whose load was refused, with the refusal).

Bounded: past ``max_entries`` the oldest go first, so a flood of random ids costs at most that
much memory. Only the miss path reads it; a known model never looks here.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any


class Expiring:
    def __init__(self, ttl_s: float, *, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s, self.max_entries, self.clock = ttl_s, max_entries, clock
        self._until: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()

    def add(self, key: Hashable, value: Any = True) -> None:
        if self.ttl_s <= 0:
            return
        self._until[key] = (self.clock() + self.ttl_s, value)
        self._until.move_to_end(key)
        while len(self._until) > self.max_entries:
            self._until.popitem(last=False)

    def get(self, key: Hashable) -> Any:
        """The value remembered for ``key`` while it is fresh, else None."""
        entry = self._until.get(key)
        if entry is None:
            return None
        if entry[0] <= self.clock():
            del self._until[key]
            return None
        return entry[1]

    def __contains__(self, key: Hashable) -> bool:
        return self.get(key) is not None

    def forget(self, matches: Callable[[Hashable], bool]) -> None:
        for key in [k for k in self._until if matches(k)]:
            del self._until[key]

    def __len__(self) -> int:
        return len(self._until)
