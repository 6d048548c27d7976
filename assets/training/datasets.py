"""Reading a tenant's training data (parquet or CSV; local, file:// or s3://) into TrainingData."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from assets.training.training_data import DataProblem, TrainingData
from resources.data.access import DataAccessPolicy, DataLocation
from resources.jobs.specs import DataSpec

if TYPE_CHECKING:
    from resources.dagster_resources import FeatureStoreResource

_ID_LIKE = ("id", "customer_id", "entity_id", "event_timestamp", "created_timestamp")


def read_table(location: DataLocation, policy: DataAccessPolicy) -> pd.DataFrame:
    """A parquet file or directory, or a CSV file, local or on S3 (``resources.data.storage``)."""
    from resources.data import storage

    try:
        return storage.read_table(location, policy)
    except FileNotFoundError:
        raise DataProblem(f"data file not found: {location.uri}") from None
    except Exception as exc:
        raise DataProblem(f"cannot read {location.uri}: {type(exc).__name__}: {str(exc)[:300]}") from exc


def _features(frame: pd.DataFrame, spec: DataSpec, source: str) -> list[str]:
    if spec.target_column not in frame.columns:
        raise DataProblem(
            f"target column '{spec.target_column}' not found in {source} (columns: {', '.join(map(str, frame.columns[:30]))})"
        )
    if spec.feature_columns:
        missing = [c for c in spec.feature_columns if c not in frame.columns]
        if missing:
            raise DataProblem(f"feature columns not found in {source}: {', '.join(missing)}")
        columns = list(spec.feature_columns)
    else:
        columns = [
            c for c in frame.columns
            if c != spec.target_column and str(c).lower() not in _ID_LIKE and not str(c).lower().endswith("_id")
        ]
    non_numeric = [c for c in columns if not (pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c]))]
    if spec.feature_columns and non_numeric:
        raise DataProblem(f"feature columns must be numeric: {', '.join(map(str, non_numeric))}")
    columns = [c for c in columns if c not in non_numeric]
    if not columns:
        raise DataProblem(f"no numeric feature columns in {source}")
    return columns


def _clean(frame: pd.DataFrame, features: list[str], target: str, source: str) -> tuple[pd.DataFrame, pd.Series]:
    subset = frame[[*features, target]].dropna()
    if subset.empty:
        raise DataProblem(f"no complete rows in {source} after dropping missing values")
    return subset[features].astype("float64"), subset[target]


def _read(spec: DataSpec, path: str, tenant_id: str, policy: DataAccessPolicy,
          feature_store: FeatureStoreResource | None) -> tuple[pd.DataFrame, DataSpec]:
    """The frame at ``path``; with a feature service, joined to the store's features (which then
    are the default feature columns)."""
    frame = read_table(policy.resolve(tenant_id, path), policy)
    if not spec.feature_service:
        return frame, spec
    from assets.training.feature_sets import join_feature_service

    if feature_store is None:
        raise DataProblem("this deployment has no feature store: feature_service cannot be used")
    frame, service_features = join_feature_service(frame, spec.feature_service, tenant_id, feature_store, path)
    return frame, spec if spec.feature_columns else spec.model_copy(update={"feature_columns": service_features})


def build_training_data(
    spec: DataSpec, model_type: str, tenant_id: str, policy: DataAccessPolicy,
    feature_store: FeatureStoreResource | None = None,
) -> TrainingData:
    from sklearn.model_selection import train_test_split

    train_frame, spec = _read(spec, spec.train_path, tenant_id, policy, feature_store)
    features = _features(train_frame, spec, spec.train_path)
    x, y = _clean(train_frame, features, spec.target_column, spec.train_path)
    if spec.validation_path:
        val_frame, _ = _read(spec, spec.validation_path, tenant_id, policy, feature_store)
        _features(val_frame, spec.model_copy(update={"feature_columns": features}), spec.validation_path)
        x_val, y_val = _clean(val_frame, features, spec.target_column, spec.validation_path)
        x_train, y_train = x, y
    else:
        stratify = y if model_type == "classification" and y.value_counts().min() >= 2 else None
        x_train, x_val, y_train, y_val = train_test_split(
            x, y, test_size=spec.validation_fraction, random_state=spec.seed, stratify=stratify
        )
    if len(x_train) < 2 or len(x_val) < 1:
        raise DataProblem(f"too few rows to train: {len(x_train)} for training, {len(x_val)} for validation")
    classes: list = []
    if model_type == "classification":
        classes = sorted(pd.concat([y_train, y_val]).unique().tolist())
        if len(classes) < 2:
            raise DataProblem(f"target column '{spec.target_column}' has a single class; a classifier needs two or more")
        if len(classes) > 100:
            raise DataProblem(f"target column '{spec.target_column}' has {len(classes)} classes: is this a regression target?")
    elif not pd.api.types.is_numeric_dtype(y_train):
        raise DataProblem(f"target column '{spec.target_column}' must be numeric for regression")
    return TrainingData(
        x_train=x_train.reset_index(drop=True), y_train=y_train.reset_index(drop=True),
        x_val=x_val.reset_index(drop=True), y_val=y_val.reset_index(drop=True),
        feature_columns=features, target_column=spec.target_column, model_type=model_type, classes=classes,
        feature_service=spec.feature_service,
    )
