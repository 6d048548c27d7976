"""An online prediction's outcome, as the API computed it (the model it was served by, its rows);
``resources.predictions.records`` holds what the log records of it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from resources.predictions.records import Answer

if TYPE_CHECKING:
    from serving_api.online.cache import Served


@dataclass
class RowsOutcome:
    served: Served
    prediction: list[Any]
    probabilities: list[list[float]] | None
    confidence: list[float] | None
    rows: list[dict[str, Any]]
    entities: list[dict[str, Any]] | None = None  # by entity: the join keys of each row
    feature_service: str | None = None

    def answer(self, model_id: str) -> Answer:
        """What the prediction log records of it."""
        model = self.served.model
        return Answer(model_id, model.version, self.rows, self.prediction, self.probabilities, self.confidence,
                      self.entities, self.feature_service)
