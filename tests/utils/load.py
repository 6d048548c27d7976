"""Prediction load for the kill tests: clients that post one body until told to stop (or until
the server is gone), keeping the request id of every prediction answered 200."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx


@contextmanager
def predictions_under_load(base: str, headers: dict[str, str], body: dict, *, clients: int, at_least: int,
                           timeout_s: float = 60) -> Iterator[list[str]]:
    """Start ``clients`` threads posting ``body`` to ``base``/api/v1/predictions; enter once
    ``at_least`` have been answered 200 (or ``timeout_s`` passed); on exit stop and join them.
    Yields the answered request ids (still growing inside the block: the load runs on)."""
    answered: list[str] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=base, headers=headers, trust_env=False, timeout=10) as client:
            while not stop.is_set():
                try:
                    response = client.post("/api/v1/predictions", json=body)
                except httpx.HTTPError:
                    return  # the server is gone
                if response.status_code == 200:
                    answered.append(response.json()["request_id"])

    workers = [threading.Thread(target=load) for _ in range(clients)]
    for worker in workers:
        worker.start()
    try:
        deadline = time.monotonic() + timeout_s
        while len(answered) < at_least and time.monotonic() < deadline:
            time.sleep(0.05)
        yield answered
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=15)
