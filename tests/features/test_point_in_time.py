"""Training sets by Feast's point-in-time join: a feature value that arrives after a label's
timestamp never reaches that label's row; the ttl bounds how old a joined value may be."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from assets.training.datasets import build_training_data
from resources.data.access import DataAccessPolicy
from resources.errors import InvalidRequest
from resources.features.store import FeatureStoreResource
from resources.jobs.specs import DataSpec
from tests.features.conftest import features_dir, seed_tenant

T = datetime(2026, 6, 1, tzinfo=UTC)
TENANT = "pit-tenant"


def _customer_rows(rows):
    frame = pd.DataFrame(rows, columns=["customer_id", "event_timestamp", "total_orders", "avg_order_value",
                                        "days_since_last_order", "support_tickets"])
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
    return frame


@pytest.fixture(scope="module")
def pit_store(tmp_path_factory) -> FeatureStoreResource:
    data_dir = tmp_path_factory.mktemp("pit")
    folder = features_dir(data_dir, TENANT)
    folder.mkdir(parents=True)
    _customer_rows([
        ("cust-1", T - timedelta(days=10), 5, 50.0, 3, 0),
        ("cust-1", T + timedelta(days=1), 99, 990.0, 0, 9),   # arrives after the label at T
        ("cust-2", T + timedelta(days=1), 7, 70.0, 1, 1),     # only a late value
        ("cust-3", T - timedelta(days=120), 4, 40.0, 8, 2),   # older than the 90-day ttl at T
    ]).to_parquet(folder / "customer_features.parquet", index=False)
    orders = pd.DataFrame({"customer_id": ["cust-1"], "event_timestamp": pd.to_datetime([T - timedelta(days=10)], utc=True),
                           "orders_last_30d": [1], "return_rate": [0.0], "days_since_first_order": [30]})
    orders.to_parquet(folder / "order_features.parquet", index=False)
    store = FeatureStoreResource(data_dir=str(data_dir))
    store.apply(TENANT)
    return store


def test_late_value_is_not_joined_to_an_earlier_label(pit_store):
    labels = pd.DataFrame({
        "customer_id": ["cust-1", "cust-2", "cust-1", "cust-3"],
        "event_timestamp": [T, T, T + timedelta(days=2), T],
        "churned": [0, 1, 1, 0],
    })
    joined = pit_store.historical_features(TENANT, labels, features=["customer_features:total_orders",
                                                                     "customer_features:avg_order_value"])
    assert list(joined.columns) == ["customer_id", "event_timestamp", "churned", "total_orders", "avg_order_value"]
    assert list(joined["customer_id"]) == ["cust-1", "cust-2", "cust-1", "cust-3"]  # every row, in order
    assert joined.loc[0, "total_orders"] == 5           # the value known at T, not the late 99
    assert pd.isna(joined.loc[1, "total_orders"])        # only a later value exists: nothing joined
    assert joined.loc[2, "total_orders"] == 99          # a later label does see it
    assert pd.isna(joined.loc[3, "total_orders"])        # outside the ttl


def test_feature_service_join_and_errors(pit_store):
    labels = pd.DataFrame({"customer_id": ["cust-1"], "event_timestamp": [T], "churned": [0]})
    joined = pit_store.historical_features(TENANT, labels, feature_service="churn_v1")
    assert list(joined.columns)[3:] == ["total_orders", "days_since_last_order", "avg_order_value", "support_tickets"]
    assert joined.loc[0, "support_tickets"] == 0
    with pytest.raises(InvalidRequest):
        pit_store.historical_features(TENANT, labels[["customer_id", "churned"]], feature_service="churn_v1")
    with pytest.raises(InvalidRequest):
        pit_store.historical_features(TENANT, labels, features=["customer_features:total_orders"], feature_service="churn_v1")


def test_training_data_from_a_feature_service(tmp_path):
    """The training pipeline's reader: entity frame + feature service -> features known at each label."""
    tenant = "train-tenant"
    paths = seed_tenant(tmp_path, tenant, n=300, seed=11)
    store = FeatureStoreResource(data_dir=str(tmp_path))
    store.apply(tenant)
    spec = DataSpec(train_path="features/churn_labels.parquet", target_column="churned", feature_service="churn_v1")
    data = build_training_data(spec, "classification", tenant, DataAccessPolicy(data_dir=str(tmp_path)), store)
    assert data.feature_columns == ["total_orders", "days_since_last_order", "avg_order_value", "support_tickets"]
    assert data.feature_service == "churn_v1" and data.classes == [0, 1]
    labels = pd.read_parquet(paths["churn_labels"]).sort_values("event_timestamp")
    snapshots = pd.read_parquet(paths["customer_features"]).sort_values("event_timestamp")
    expected = pd.merge_asof(labels, snapshots, on="event_timestamp", by="customer_id",
                             tolerance=pd.Timedelta(days=90)).dropna()
    assert len(data.x_train) + len(data.x_val) == len(expected)  # labels without a prior snapshot are dropped
    got = pd.concat([data.x_train, data.x_val])
    assert sorted(got["total_orders"]) == sorted(expected["total_orders"].astype(float))
