"""Training frames from the feature store: an entity frame (join keys, event_timestamp, label)
joined point-in-time to a Feast feature service, so no feature value from after a label's
timestamp reaches its row."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from assets.training.training_data import DataProblem

if TYPE_CHECKING:
    from resources.dagster_resources import FeatureStoreResource


def join_feature_service(
    frame: pd.DataFrame, service: str, tenant_id: str, feature_store: FeatureStoreResource, source: str,
) -> tuple[pd.DataFrame, list[str]]:
    """The entity frame with the service's features appended (NaN where none was valid at the
    row's time), and the feature names in the service's order."""
    features = [ref.split(":", 1)[1] for ref in feature_store.service_refs(tenant_id, service)]
    clashing = [c for c in features if c in frame.columns]
    if clashing:
        raise DataProblem(f"{source} already has column(s) {', '.join(clashing)} of feature service '{service}'")
    if "event_timestamp" not in frame.columns:
        raise DataProblem(f"{source} needs an event_timestamp column to join feature service '{service}'")
    return feature_store.historical_features(tenant_id, frame, feature_service=service), features
