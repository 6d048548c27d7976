"""Data the tests train on: scikit-learn's bundled breast_cancer and diabetes sets (as frames, as
(X, y), as a train/validation split the trainers take) and a tiny training file in a tenant's area."""

from __future__ import annotations

import pandas as pd
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.model_selection import train_test_split

from assets.training.training_data import TrainingData
from mlservice.config.settings import Settings


def breast_cancer(*, snake_case: bool = False) -> pd.DataFrame:
    """569 rows: 30 float features and ``target`` (0/1). ``snake_case``: "mean_radius" instead of
    "mean radius", as the tests that write the set to parquet for a tenant name its columns."""
    frame = load_breast_cancer(as_frame=True).frame
    if snake_case:
        frame.columns = [c.replace(" ", "_") for c in frame.columns]
    return frame


def diabetes() -> pd.DataFrame:
    """442 rows: 10 float features and ``target`` (a float)."""
    return load_diabetes(as_frame=True).frame


def features_and_target(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    return frame.drop(columns="target"), frame["target"]


def training_data(frame: pd.DataFrame, model_type: str, *, stratify: bool = False, test_size: float = 0.2,
                  random_state: int = 7) -> TrainingData:
    """The frame split into train and validation as the trainers take it (features: every column
    but ``target``; classes: the sorted labels for classification)."""
    x, y = features_and_target(frame)
    x_train, x_val, y_train, y_val = train_test_split(
        x, y, test_size=test_size, random_state=random_state, stratify=y if stratify else None)
    classes = sorted(y.unique().tolist()) if model_type == "classification" else []
    return TrainingData(x_train, y_train, x_val, y_val, list(x.columns), "target", model_type, classes)


def write_tiny_training_file(settings: Settings, tenant: str) -> str:
    """Four rows (feature ``a``, target ``churned``) at ``data/train.parquet`` in the tenant's area,
    for the API tests that submit jobs; returns the path relative to the tenant's area."""
    folder = settings.tenants_dir / tenant / "data"
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "churned": [0, 1, 0, 1]}).to_parquet(folder / "train.parquet")
    return "data/train.parquet"
