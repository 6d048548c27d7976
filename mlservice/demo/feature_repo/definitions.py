"""Feast definitions of the churn features: entity, sources, feature views, feature services.

``build_objects(source_dir)`` returns the objects over the parquet files of one data folder
(the platform passes a tenant's absolute ``<data_dir>/tenants/<tenant>/features``). The
module-level objects below are the same definitions over ``data/`` for the Feast CLI run from
this folder (see ``feature_store.yaml``); building them reads no file and opens no connection.

Feature views hold monthly snapshots (``mlservice.demo.feature_data``), so their ttl (how far back a
point-in-time join or an incremental materialization looks) is 90 days: a label is joined to
the latest snapshot at or before its timestamp, at most 90 days old.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureService, FeatureView, Field, FileSource
from feast.types import Float64, Int64, String
from feast.value_type import ValueType

from resources.features.demo_names import CHURN_V1, CUSTOMER_FEATURES, FEATURE_SERVICES, FEATURE_VIEWS, ORDER_FEATURES, SOURCE_FILES  # noqa: F401

TTL = timedelta(days=90)
TAGS = {"owner": "mlservice", "domain": "churn"}


def build_definitions(source_dir: str | Path) -> dict[str, object]:
    """The Feast objects by name, over ``<source_dir>/customer_features.parquet`` and
    ``<source_dir>/order_features.parquet``."""
    customer = Entity(
        name="customer", join_keys=["customer_id"], value_type=ValueType.STRING,
        description="A customer of the shop (ids cust-1 ... cust-N)",
    )
    customer_source = FileSource(
        name="customer_source", path=str(Path(source_dir) / SOURCE_FILES["customer_features"]),
        timestamp_field="event_timestamp", description="Monthly snapshots of customer activity",
    )
    order_source = FileSource(
        name="order_source", path=str(Path(source_dir) / SOURCE_FILES["order_features"]),
        timestamp_field="event_timestamp", description="Monthly snapshots of order history",
    )
    customer_features = FeatureView(
        name="customer_features", entities=[customer], ttl=TTL, online=True, source=customer_source, tags=TAGS,
        schema=[
            Field(name="customer_id", dtype=String),
            Field(name="total_orders", dtype=Int64, description="orders placed so far"),
            Field(name="avg_order_value", dtype=Float64, description="mean order value so far"),
            Field(name="days_since_last_order", dtype=Int64, description="days since the latest order"),
            Field(name="support_tickets", dtype=Int64, description="support tickets opened in the last 90 days"),
        ],
    )
    order_features = FeatureView(
        name="order_features", entities=[customer], ttl=TTL, online=True, source=order_source, tags=TAGS,
        schema=[
            Field(name="customer_id", dtype=String),
            Field(name="orders_last_30d", dtype=Int64, description="orders in the last 30 days"),
            Field(name="return_rate", dtype=Float64, description="returned orders / orders placed"),
            Field(name="days_since_first_order", dtype=Int64, description="customer tenure in days"),
        ],
    )
    churn_v1 = FeatureService(
        name="churn_v1", features=[customer_features[CHURN_V1]], tags=TAGS,
        description="Features of the churn model, version 1",
    )
    churn_v2 = FeatureService(
        name="churn_v2", features=[customer_features[CHURN_V1], order_features], tags=TAGS,
        description="Features of the churn model, version 2: v1 plus order history",
    )
    return {
        "customer": customer, "customer_source": customer_source, "order_source": order_source,
        "customer_features": customer_features, "order_features": order_features,
        "churn_v1": churn_v1, "churn_v2": churn_v2,
    }


def build_objects(source_dir: str | Path) -> list:
    """The list that ``FeatureStore.apply`` takes."""
    return list(build_definitions(source_dir).values())


# For `feast apply` run in this folder: the CLI collects module-level Feast objects.
_cli = build_definitions("data")
customer = _cli["customer"]
customer_source = _cli["customer_source"]
order_source = _cli["order_source"]
customer_features = _cli["customer_features"]
order_features = _cli["order_features"]
churn_v1 = _cli["churn_v1"]
churn_v2 = _cli["churn_v2"]
