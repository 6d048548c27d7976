"""The micro-batcher's wait for more requests ends as soon as no prediction request is on its
way (``serving_api.online.arrivals``): with every caller already in the batch it predicts at
once; a request still on its way joins the batch; one that ends elsewhere wakes the batch."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from serving_api.online.arrivals import Arrivals
from serving_api.online.micro_batcher import MicroBatcher

WINDOW_MS = 3000.0  # far longer than any of these tests takes unless a batch waits it out


def _batcher(arrivals: Arrivals | None) -> tuple[MicroBatcher, list[int]]:
    sizes: list[int] = []

    def predict(matrix):
        sizes.append(len(matrix))
        return matrix[:, 0] * 2, None

    return MicroBatcher(predict, max_batch=64, max_wait_ms=WINDOW_MS, arrivals=arrivals), sizes


async def _request(arrivals: Arrivals | None, batcher: MicroBatcher, value: float, *, before: asyncio.Event | None = None):
    """One prediction request as the API runs it: the middleware's ticket around the route."""
    ticket = arrivals.begin() if arrivals is not None else None
    try:
        if before is not None:
            await before.wait()  # still parsing, authenticating...
        predictions, _ = await batcher.predict(np.array([[value]]))
        return float(predictions[0])
    finally:
        if ticket is not None:
            arrivals.end(ticket)


def test_a_batch_holding_every_caller_predicts_at_once():
    async def run():
        arrivals = Arrivals()
        batcher, sizes = _batcher(arrivals)
        started = time.monotonic()
        answers = await asyncio.gather(*(_request(arrivals, batcher, v) for v in (1.0, 2.0, 3.0)))
        return answers, sizes, time.monotonic() - started, (arrivals.pending, arrivals.joined)

    answers, sizes, seconds, counts = asyncio.run(run())
    assert answers == [2.0, 4.0, 6.0] and sizes == [3] and counts == (0, 3)
    assert seconds < WINDOW_MS / 1000 / 3  # did not wait out its window


def test_without_arrivals_a_batch_waits_its_window_for_more():
    """What the arrivals change: the same batch without them lingers for the whole window."""
    async def run():
        batcher, sizes = _batcher(None)
        batcher.max_wait_s = 0.3
        started = time.monotonic()
        await asyncio.gather(*(_request(None, batcher, v) for v in (1.0, 2.0)))
        return sizes, time.monotonic() - started

    sizes, seconds = asyncio.run(run())
    assert sizes == [2] and seconds >= 0.29


def test_a_request_on_its_way_joins_the_waiting_batch():
    async def run():
        arrivals = Arrivals()
        batcher, sizes = _batcher(arrivals)
        late = asyncio.Event()
        late_request = asyncio.ensure_future(_request(arrivals, batcher, 5.0, before=late))
        await asyncio.sleep(0)  # its ticket is open: it is on its way
        early = asyncio.gather(*(_request(arrivals, batcher, v) for v in (1.0, 2.0)))
        await asyncio.sleep(0.05)
        assert sizes == []  # the batch of two waits for the third
        late.set()
        return await early, await late_request, sizes, arrivals.pending

    early, late, sizes, pending = asyncio.run(run())
    assert early == [2.0, 4.0] and late == 10.0
    assert sizes == [3] and pending == 0  # one predict call for all three


@pytest.mark.parametrize("how", ["ended", "failed"])
def test_a_request_that_ends_without_a_batcher_wakes_the_waiting_batch(how):
    async def run():
        arrivals = Arrivals()
        batcher, sizes = _batcher(arrivals)
        refused = asyncio.Event()

        async def refused_request():  # e.g. a 404 before any batcher, or a handler that raised
            ticket = arrivals.begin()
            try:
                await refused.wait()
                if how == "failed":
                    raise LookupError("no such model")
            finally:
                arrivals.end(ticket)

        other = asyncio.ensure_future(refused_request())
        await asyncio.sleep(0)
        started = time.monotonic()
        early = asyncio.ensure_future(asyncio.gather(*(_request(arrivals, batcher, v) for v in (1.0, 2.0))))
        await asyncio.sleep(0.05)
        refused.set()
        answers = await early
        await asyncio.gather(other, return_exceptions=True)
        return answers, sizes, time.monotonic() - started, arrivals.pending

    answers, sizes, seconds, pending = asyncio.run(run())
    assert answers == [2.0, 4.0] and sizes == [2] and pending == 0
    assert seconds < WINDOW_MS / 1000 / 3  # woken when the other request ended, not at the window's end


@pytest.mark.parametrize("method,path,counted", [
    ("POST", "/api/v1/predictions", True),
    ("POST", "/api/v1/ensembles/ens-1/predict", True),
    ("POST", "/v2/models/churn/infer", True),
    ("POST", "/v2/models/churn/versions/1.0.0/infer", True),
    ("POST", "/api/v1/predictions/batch", False),
    ("GET", "/api/v1/predictions", False),
    ("POST", "/api/v1/training", False),
])
def test_only_requests_that_can_reach_a_batcher_are_counted(method, path, counted):
    assert Arrivals.counts(method, path) is counted
