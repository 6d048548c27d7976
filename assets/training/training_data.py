"""The training set as the trainers see it: features and labels, split into train and validation."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd


class DataProblem(ValueError):
    """The data cannot train this model: the message is what the job's status shows."""


@dataclass
class TrainingData:
    x_train: pd.DataFrame
    y_train: pd.Series
    x_val: pd.DataFrame
    y_val: pd.Series
    feature_columns: list[str]
    target_column: str
    model_type: str  # "classification" | "regression"
    classes: list = field(default_factory=list)  # sorted class labels for classification
    feature_service: str | None = None  # the Feast feature service the features came from

    @property
    def rows(self) -> dict[str, int]:
        return {"train": len(self.x_train), "validation": len(self.x_val)}
