"""Explanations of predictions, bounded in cost: what the API and Serve replicas both run.

A request whose explanation would cost more than ``max_cost`` (rows x coalitions x background
rows, ``mlservice.inference.bounds.explanation_cost``) is refused (400) before anything is predicted.
"""

from __future__ import annotations

from typing import Any

from mlservice.inference.bounds import explanation_cost
from mlservice.inference.loaded_model import LoadedModel
from mlservice.inference.validation import to_frame
from resources.errors import InvalidRequest

# Shapley sampling (models with more than 10 features): 32 antithetic permutations keep an
# explanation near 80 ms for a 100-tree forest with 30 features; the sum stays exact.
SAMPLED_PERMUTATIONS = 32


def check_cost(model: LoadedModel, rows: int, max_cost: int) -> None:
    """400 when explaining ``rows`` rows of ``model`` would cost more than ``max_cost``."""
    cost = explanation_cost(model, rows, SAMPLED_PERMUTATIONS)
    if cost.total > max_cost:
        raise InvalidRequest(
            f"explanation cost {cost.total:,} (rows {cost.rows} x coalitions {cost.coalitions:,} x background rows "
            f"{cost.background_rows}) exceeds the bound of {max_cost:,}: explain fewer rows",
            {"explanation_cost": cost.total, "max_explanation_cost": max_cost, "rows": cost.rows,
             "coalitions": cost.coalitions, "background_rows": cost.background_rows},
        )


def explain_row(model: LoadedModel, rows: list[dict[str, Any]], index: int, max_cost: int) -> dict[str, Any]:
    """The explanation of ``rows[index]`` (blocking: seconds for large models), within its share of the bound."""
    from mlservice.inference.contributions import explain

    if model.estimator is None:
        return {"method": "unavailable", "reason": "explanations need a scikit-learn model"}
    frame = to_frame([rows[index]], model.features)
    per_row = max_cost // max(1, len(rows))  # also bounds a linear model that falls back to Shapley
    try:
        return explain(model.estimator, frame, model_type=model.model_type, classes=model.classes or None,
                       background=model.background, n_samples=SAMPLED_PERMUTATIONS, max_cost=per_row).to_dict()
    except ValueError as exc:  # e.g. a non-linear model logged without an input example
        return {"method": "unavailable", "reason": str(exc)}
