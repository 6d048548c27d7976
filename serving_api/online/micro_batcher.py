"""Adaptive micro-batching: concurrent requests for one model become one predict call.

One worker task per model takes the first queued request, drains whatever else is already
waiting (up to ``max_batch`` rows), and only when that shows concurrency (more than one request)
waits up to ``max_wait_ms`` for more. A lone request therefore runs at once; under load, batches
form by themselves while the previous batch computes. Given the process's ``Arrivals``
(``serving_api.online.arrivals``), the wait also ends as soon as no prediction request is on its
way to a batcher: with few callers per process, all of them are often in the batch already. The
predict call runs in a worker thread, never on the event loop. Results are split back per
request in order.

A batch whose predict call fails (or answers a non-finite number) is predicted again request by
request, in one thread hop: one caller's bad row never fails another caller's prediction. The
error a caller gets is ``on_error(its inputs, exception)`` when given (the cache maps values a
model cannot take to a 422 naming the feature). ``close()`` (eviction) ends the worker once the
queued requests are answered; a caller still holding a closed batcher is served alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from mlservice.inference.joint_predict import predict_together
from serving_api.online.arrivals import Arrivals

Inputs = "pd.DataFrame | np.ndarray"
PredictFn = Callable[[Inputs], tuple[np.ndarray, "np.ndarray | None"]]
ErrorFn = Callable[[Any, Exception], Exception]
_STOP = object()
_WAKE = object()  # put by Arrivals when no request is on its way: a lingering batch stops waiting


class MicroBatcher:
    def __init__(
        self, predict: PredictFn, *, executor: ThreadPoolExecutor | None = None, max_batch: int = 64, max_wait_ms: float = 2.0,
        on_error: ErrorFn | None = None, arrivals: Arrivals | None = None,
    ) -> None:
        self.predict_fn, self.executor, self.on_error, self.arrivals = predict, executor, on_error, arrivals
        self.max_batch, self.max_wait_s = max_batch, max_wait_ms / 1000
        self._queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None
        self.closed = False
        self.batches = 0  # predict calls made for whole batches (for tests and metrics)
        self.retried = 0  # batches that failed and were answered request by request

    async def predict(self, frame: Inputs) -> tuple[np.ndarray, np.ndarray | None]:
        loop = asyncio.get_running_loop()
        if self.closed:
            self._arrived()
            [(ok, result)] = await loop.run_in_executor(self.executor, self._each, [frame])
            if not ok:
                raise self._error(frame, result)
            return result
        if self._queue is None:
            self._queue = asyncio.Queue()
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._run())
        future = loop.create_future()
        self._queue.put_nowait((frame, future))
        self._arrived()  # after the put: a wake it causes reaches a lingering batch after this request
        return await future

    def close(self) -> None:
        """Take no more requests; the worker ends after answering those already queued."""
        if self.closed:
            return
        self.closed = True
        if self._queue is not None and self._worker is not None and not self._worker.done():
            self._queue.put_nowait(_STOP)

    def _arrived(self) -> None:
        if self.arrivals is not None:
            self.arrivals.arrived()

    def _wake(self) -> None:
        if self._queue is not None:
            self._queue.put_nowait(_WAKE)

    async def _collect(self) -> tuple[list[tuple[Any, asyncio.Future]], bool]:
        """(the next batch, whether the worker should stop after it)."""
        assert self._queue is not None
        first = _WAKE
        while first is _WAKE:  # a wake left over from an earlier linger
            first = await self._queue.get()
        if first is _STOP:
            return [], True
        batch, rows = [first], len(first[0])
        while rows < self.max_batch and not self._queue.empty():
            item = self._queue.get_nowait()
            if item is _STOP:
                return batch, True
            if item is not _WAKE:
                batch.append(item)
                rows += len(item[0])
        arrivals = self.arrivals
        if len(batch) > 1 and rows < self.max_batch and self.max_wait_s > 0 and (arrivals is None or arrivals.pending):
            stop = await self._linger(batch, rows, arrivals)
            return batch, stop
        return batch, False

    async def _linger(self, batch: list, rows: int, arrivals: Arrivals | None) -> bool:
        """Add what arrives within ``max_wait_s`` (or until no request is on its way) to ``batch``;
        True when the worker should stop after it."""
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait_s
        if arrivals is not None:
            arrivals.wait_for_none(self._wake)
        try:
            while rows < self.max_batch:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return False
                try:
                    item = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    return False
                if item is _STOP:
                    return True
                if item is _WAKE:
                    if arrivals is None or not arrivals.pending:
                        return False
                    arrivals.wait_for_none(self._wake)  # a request began after the wake: wait for it too
                    continue
                batch.append(item)
                rows += len(item[0])
            return False
        finally:
            if arrivals is not None:
                arrivals.forget(self._wake)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        stop = False
        while not stop:
            batch, stop = await self._collect()
            if batch:
                await self._answer(loop, batch)

    def _each(self, frames: list) -> list[tuple[bool, Any]]:
        """Predict every request alone (in a worker thread): (True, result) or (False, exception)."""
        return [predict_together(self.predict_fn, [frame])[0][0] for frame in frames]

    def _error(self, frame: Inputs, exc: Exception) -> Exception:
        if self.on_error is None:
            return exc
        try:
            return self.on_error(frame, exc)
        except Exception:
            return exc

    async def _answer(self, loop: asyncio.AbstractEventLoop, batch: list[tuple[Any, asyncio.Future]]) -> None:
        answers, retried = await loop.run_in_executor(self.executor, predict_together, self.predict_fn, [f for f, _ in batch])
        if retried:
            self.retried += 1
        elif all(ok for ok, _ in answers):
            self.batches += 1
        for (frame, future), (ok, result) in zip(batch, answers, strict=True):
            if not future.done():
                if ok:
                    future.set_result(result)
                else:
                    future.set_exception(self._error(frame, result))
