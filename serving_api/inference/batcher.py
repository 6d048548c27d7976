"""Adaptive micro-batching: concurrent requests for one model become one predict call.

One worker task per model takes the first queued request, drains whatever else is already
waiting (up to ``max_batch`` rows), and only when that shows concurrency (more than one request)
waits up to ``max_wait_ms`` for more. A lone request therefore runs at once; under load, batches
form by themselves while the previous batch computes. The predict call runs in a worker thread,
never on the event loop. Results are split back per request in order.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np
import pandas as pd

Inputs = "pd.DataFrame | np.ndarray"
PredictFn = Callable[[Inputs], tuple[np.ndarray, "np.ndarray | None"]]


def _combine(parts: list) -> "pd.DataFrame | np.ndarray":
    if len(parts) == 1:
        return parts[0]
    if isinstance(parts[0], np.ndarray):
        return np.concatenate(parts)
    return pd.concat(parts, ignore_index=True)


class MicroBatcher:
    def __init__(
        self, predict: PredictFn, *, executor: ThreadPoolExecutor | None = None, max_batch: int = 64, max_wait_ms: float = 2.0,
    ) -> None:
        self.predict_fn, self.executor = predict, executor
        self.max_batch, self.max_wait_s = max_batch, max_wait_ms / 1000
        self._queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None
        self.batches = 0  # predict calls made (for tests and metrics)

    async def predict(self, frame: Inputs) -> tuple[np.ndarray, np.ndarray | None]:
        if self._queue is None:
            self._queue = asyncio.Queue()
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._run())
        future = asyncio.get_running_loop().create_future()
        await self._queue.put((frame, future))
        return await future

    async def _collect(self) -> list[tuple[pd.DataFrame, asyncio.Future]]:
        assert self._queue is not None
        batch = [await self._queue.get()]
        rows = len(batch[0][0])
        while rows < self.max_batch and not self._queue.empty():
            item = self._queue.get_nowait()
            batch.append(item)
            rows += len(item[0])
        if len(batch) > 1 and rows < self.max_batch and self.max_wait_s > 0:
            deadline = asyncio.get_running_loop().time() + self.max_wait_s
            while rows < self.max_batch:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), remaining)
                except asyncio.TimeoutError:
                    break
                batch.append(item)
                rows += len(item[0])
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            combined = _combine([frame for frame, _ in batch])
            try:
                predictions, probabilities = await loop.run_in_executor(self.executor, self.predict_fn, combined)
            except Exception as exc:  # noqa: BLE001 - every waiter of the batch gets the error
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self.batches += 1
            start = 0
            for frame, future in batch:
                end = start + len(frame)
                if not future.done():
                    future.set_result((predictions[start:end], None if probabilities is None else probabilities[start:end]))
                start = end
