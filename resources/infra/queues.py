"""The one helper the background writers (audit log, prediction log) share for their queues."""

from __future__ import annotations

import queue
from typing import Any


def drain(items: queue.Queue[Any], skip: object) -> list[Any]:
    """Everything queued now, without waiting, leaving out ``skip`` (a writer's stop mark)."""
    taken = []
    while True:
        try:
            item = items.get_nowait()
        except queue.Empty:
            return taken
        if item is not skip:
            taken.append(item)
