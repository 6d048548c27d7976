"""The demo churn population: deterministic, the declared schema, labels that depend on features."""

from __future__ import annotations

import pandas as pd
import pandas.testing as pdt

from mlservice.demo.feature_data import AS_OF, churn_feature_tables, write_feature_data

SCHEMAS = {
    "customer_features": {"customer_id": "object", "event_timestamp": "datetime64[ns, UTC]", "total_orders": "int64",
                          "avg_order_value": "float64", "days_since_last_order": "int64", "support_tickets": "int64"},
    "order_features": {"customer_id": "object", "event_timestamp": "datetime64[ns, UTC]", "orders_last_30d": "int64",
                       "return_rate": "float64", "days_since_first_order": "int64"},
    "churn_labels": {"customer_id": "object", "event_timestamp": "datetime64[ns, UTC]", "churned": "int64"},
}


def test_same_seed_same_tables_other_seed_other_tables():
    first, again, other = churn_feature_tables(n=300, seed=3), churn_feature_tables(n=300, seed=3), churn_feature_tables(n=300, seed=4)
    for name in SCHEMAS:
        pdt.assert_frame_equal(first[name], again[name])
    assert not first["customer_features"].equals(other["customer_features"])


def test_schema_ids_and_timestamps():
    tables = churn_feature_tables(n=300, seed=1, snapshots=6)
    for name, schema in SCHEMAS.items():
        assert {c: str(t) for c, t in tables[name].dtypes.items()} == schema
    snapshots = tables["customer_features"]
    assert set(snapshots["customer_id"]) <= {f"cust-{i}" for i in range(1, 301)}
    assert snapshots["event_timestamp"].max() == pd.Timestamp(AS_OF)
    assert snapshots["event_timestamp"].nunique() == 6  # a handful of snapshots, not one per day
    assert snapshots.groupby("customer_id").size().max() <= 6
    assert (snapshots["event_timestamp"].dt.hour == 0).all()
    labels = tables["churn_labels"]
    assert labels["event_timestamp"].max() < pd.Timestamp(AS_OF)
    assert labels["customer_id"].is_unique


def test_features_are_consistent_over_time():
    snapshots = churn_feature_tables(n=300, seed=2)["customer_features"].sort_values(["customer_id", "event_timestamp"])
    grown = snapshots.groupby("customer_id")["total_orders"].apply(lambda s: s.is_monotonic_increasing)
    assert grown.all()  # order counts never shrink
    orders = churn_feature_tables(n=300, seed=2)["order_features"]
    assert orders["return_rate"].between(0, 1).all() and (orders["days_since_first_order"] >= 0).all()


def test_churn_depends_on_features_with_noise():
    tables = churn_feature_tables(n=4000, seed=5)
    labels = tables["churn_labels"].sort_values("event_timestamp")
    snapshots = tables["customer_features"].sort_values("event_timestamp")
    joined = pd.merge_asof(labels, snapshots, on="event_timestamp", by="customer_id").dropna()
    assert 0.15 < labels["churned"].mean() < 0.6
    recent = joined["days_since_last_order"] < joined["days_since_last_order"].median()
    assert joined.loc[~recent, "churned"].mean() > joined.loc[recent, "churned"].mean() + 0.1
    assert 0 < joined.loc[recent, "churned"].mean()  # noise: not a deterministic rule


def test_write_feature_data(tmp_path):
    paths = write_feature_data(tmp_path / "features", n=100, seed=9)
    assert sorted(p.name for p in paths.values()) == ["churn_labels.parquet", "customer_features.parquet", "order_features.parquet"]
    pdt.assert_frame_equal(pd.read_parquet(paths["order_features"]), churn_feature_tables(n=100, seed=9)["order_features"])
