"""A second feature domain for tests of tenant-defined feature definitions: products in stores,
keyed by two join keys of other names and types than the demo's (store_id string, sku int64,
one entity each), two views over two parquet sources with their own timestamp column, one
service, and labels for training on it. Generated data."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

DOCUMENT = {
    "entities": [
        {"name": "store", "join_keys": [{"name": "store_id", "type": "string"}]},
        {"name": "product", "join_keys": [{"name": "sku", "type": "int64"}]},
    ],
    "sources": [
        {"name": "sales_source", "path": "products/sales.parquet", "timestamp_field": "observed_at"},
        {"name": "price_source", "path": "products/prices.parquet", "timestamp_field": "observed_at"},
    ],
    "feature_views": [
        {"name": "sales", "entities": ["store", "product"], "source": "sales_source", "ttl_seconds": 30 * 86400,
         "fields": [{"name": "units_7d", "type": "int64"}, {"name": "returns_7d", "type": "int64"}]},
        {"name": "prices", "entities": ["store", "product"], "source": "price_source", "ttl_seconds": 30 * 86400,
         "fields": [{"name": "price", "type": "float64"}, {"name": "discount", "type": "float64"}]},
    ],
    "feature_services": [{"name": "demand_v1", "features": ["sales:units_7d", "prices"]}],
}
DEMAND_FEATURES = ["units_7d", "price", "discount"]


def write_products(area: Path, today: datetime, stores: int = 3, skus: int = 20, weeks: int = 4) -> dict[str, pd.DataFrame]:
    """Weekly snapshots up to ``today`` under ``<area>/products/`` (the tenant's data area), and
    ``labels.parquet``: one row per store and sku a day after the newest snapshot, ``high_demand``
    (units_7d above the median then, with noise). Returns the frames by name."""
    rng = np.random.default_rng(3)
    rows = [(f"s{s}", sku, today - timedelta(days=7 * week))
            for s in range(1, stores + 1) for sku in range(1, skus + 1) for week in range(weeks)]
    keys = pd.DataFrame(rows, columns=["store_id", "sku", "observed_at"])
    keys["sku"] = keys["sku"].astype("int64")
    units = rng.integers(0, 100, len(keys)).astype("int64")
    sales = keys.assign(units_7d=units, returns_7d=rng.integers(0, 5, len(keys)).astype("int64"))
    prices = keys.assign(price=rng.uniform(1, 50, len(keys)).round(2), discount=rng.uniform(0, 0.3, len(keys)).round(3))
    newest = sales[sales["observed_at"] == today]
    flip = rng.random(len(newest)) < 0.1
    labels = pd.DataFrame({"store_id": newest["store_id"].to_numpy(), "sku": newest["sku"].to_numpy(),
                           "event_timestamp": today + timedelta(days=1),
                           "high_demand": ((newest["units_7d"] > newest["units_7d"].median()).to_numpy() ^ flip).astype(int)})
    folder = area / "products"
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in (("sales", sales), ("prices", prices), ("labels", labels)):
        frame.to_parquet(folder / f"{name}.parquet", index=False)
    return {"sales": sales, "prices": prices, "labels": labels}


def applied_products(feature_store, tenant: str, **sizes) -> dict[str, pd.DataFrame]:
    """``write_products`` (snapshots up to today) into the tenant's area and ``DOCUMENT`` applied to
    its Feast registry, as the API's PUT /features/definitions does; the frames."""
    from datetime import UTC

    from resources.features.definitions import FeatureDocument, feast_objects

    area = feature_store.source_dir(tenant).parent
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    frames = write_products(area, today, **sizes)
    feature_store.apply_objects(tenant, feast_objects(FeatureDocument.model_validate(DOCUMENT),
                                                      lambda source: str(area / source.path)))
    return frames
