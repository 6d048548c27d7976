"""Feature-store fixtures: real Feast on a temporary data directory, small demo populations."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from mlservice.demo.feature_data import AS_OF, write_feature_data
from resources.features.store import FeatureStoreResource

TENANT = "acme-corp"
END = AS_OF + timedelta(days=1)  # after the newest snapshot of the demo data
REFS = ["customer_features:total_orders", "customer_features:avg_order_value", "customer_features:days_since_last_order"]


def features_dir(data_dir: Path, tenant: str) -> Path:
    return Path(data_dir) / "tenants" / tenant / "features"


def seed_tenant(data_dir: Path, tenant: str, n: int = 200, seed: int = 7) -> dict[str, Path]:
    return write_feature_data(features_dir(data_dir, tenant), n=n, seed=seed)


def latest_rows(path: Path, at=END) -> pd.DataFrame:
    """The newest source row per customer at or before ``at``: what the online store should hold."""
    frame = pd.read_parquet(path)
    frame = frame[frame["event_timestamp"] <= at]
    return frame.sort_values("event_timestamp").groupby("customer_id").tail(1).set_index("customer_id")


@pytest.fixture(scope="module")
def feature_store(tmp_path_factory) -> FeatureStoreResource:
    """Tenant ``acme-corp`` with 200 customers, applied and fully materialized up to END."""
    data_dir = tmp_path_factory.mktemp("features")
    seed_tenant(data_dir, TENANT)
    store = FeatureStoreResource(data_dir=str(data_dir))
    store.apply(TENANT)
    store.materialize(TENANT, incremental=False, end=END)
    return store
