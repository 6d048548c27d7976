"""Explanations of online predictions (``mlservice.inference.explanations``: bounded in cost) on threads of
their own: ``workers`` threads, so they never hold the default pool that resolutions, loads and
stage changes use.
"""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from mlservice.inference.explanations import check_cost, explain_row
from mlservice.inference.loaded_model import LoadedModel

if TYPE_CHECKING:
    from serving_api.predictions.outcome import RowsOutcome


class Explainer:
    def __init__(self, *, max_cost: int = 2_000_000, workers: int = 1) -> None:
        self.explain_max_cost, self.explain_workers = max_cost, workers
        self._explain_executor: ThreadPoolExecutor | None = None

    def check(self, model: LoadedModel, rows: int) -> None:
        """400 when explaining ``rows`` rows of ``model`` would cost more than the bound."""
        check_cost(model, rows, self.explain_max_cost)

    @property
    def explain_executor(self) -> ThreadPoolExecutor:
        if self._explain_executor is None:
            self._explain_executor = ThreadPoolExecutor(max_workers=self.explain_workers, thread_name_prefix="explain")
        return self._explain_executor

    def close(self) -> None:
        if self._explain_executor is not None:
            self._explain_executor.shutdown(wait=False, cancel_futures=True)
            self._explain_executor = None

    async def explain(self, outcome: RowsOutcome) -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        model = outcome.served.model
        return [await loop.run_in_executor(self.explain_executor, functools.partial(
            explain_row, model, outcome.rows, index, self.explain_max_cost)) for index in range(len(outcome.rows))]
