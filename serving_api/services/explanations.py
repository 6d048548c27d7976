"""Explanations of online predictions: bounded in cost, on threads of their own.

A request whose explanation would cost more than ``max_cost`` (rows x coalitions x background
rows, ``inference.bounds.explanation_cost``) is a 400 before anything is predicted; explanations
run on ``workers`` threads of their own, so they never hold the default pool that resolutions,
loads and stage changes use.
"""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from inference.bounds import explanation_cost
from inference.model import LoadedModel
from inference.validation import to_frame
from resources.errors import InvalidRequest

if TYPE_CHECKING:
    from serving_api.services.prediction_record import RowsOutcome

# Shapley sampling (models with more than 10 features): 32 antithetic permutations keep an
# explanation near 80 ms for a 100-tree forest with 30 features; the sum stays exact.
SAMPLED_PERMUTATIONS = 32


class Explainer:
    def __init__(self, *, max_cost: int = 2_000_000, workers: int = 1) -> None:
        self.explain_max_cost, self.explain_workers = max_cost, workers
        self._explain_executor: ThreadPoolExecutor | None = None

    def check(self, model: LoadedModel, rows: int) -> None:
        """400 when explaining ``rows`` rows of ``model`` would cost more than the bound."""
        cost = explanation_cost(model, rows, SAMPLED_PERMUTATIONS)
        if cost.total > self.explain_max_cost:
            raise InvalidRequest(
                f"explanation cost {cost.total:,} (rows {cost.rows} x coalitions {cost.coalitions:,} x background rows "
                f"{cost.background_rows}) exceeds the bound of {self.explain_max_cost:,}: explain fewer rows",
                {"explanation_cost": cost.total, "max_explanation_cost": self.explain_max_cost, "rows": cost.rows,
                 "coalitions": cost.coalitions, "background_rows": cost.background_rows},
            )

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
        from inference.explain import explain

        model = outcome.served.model
        if model.estimator is None:
            return [{"method": "unavailable", "reason": "explanations need a scikit-learn model"}]
        results = []
        frame = to_frame(outcome.rows, model.features)
        loop = asyncio.get_running_loop()
        per_row = self.explain_max_cost // max(1, len(frame))  # also bounds a linear model that falls back to Shapley
        for index in range(len(frame)):
            row = frame.iloc[[index]]
            try:
                explanation = await loop.run_in_executor(self.explain_executor, functools.partial(
                    explain, model.estimator, row, model_type=model.model_type, classes=model.classes or None,
                    background=model.background, n_samples=SAMPLED_PERMUTATIONS, max_cost=per_row,
                ))
            except ValueError as exc:  # e.g. a non-linear model logged without an input example
                results.append({"method": "unavailable", "reason": str(exc)})
                continue
            results.append(explanation.to_dict())
        return results
