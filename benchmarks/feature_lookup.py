"""In-process online feature lookups: FeatureStoreResource.online_features vs Feast's own
``get_online_features(...).to_dict()`` on the same store, 2 entity rows x 3 features.

    .venv/bin/python benchmarks/feature_lookup.py [--customers 20000] [--calls 1000]

Builds a throw-away data directory with the demo population (tenant acme-corp), applies the
definitions, materializes everything, then times both calls alternately (warm, same process).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import timedelta

from mlservice.feature_data import AS_OF, write_feature_data
from resources.feature_store import FeatureStoreResource

TENANT = "acme-corp"
REFS = ["customer_features:total_orders", "customer_features:avg_order_value", "customer_features:days_since_last_order"]
ROWS = [{"customer_id": "cust-123"}, {"customer_id": "cust-456"}]


def _percentiles(samples: list[float]) -> str:
    samples = sorted(samples)
    pick = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))] * 1000  # noqa: E731
    return f"p50 {statistics.median(samples) * 1000:.3f} ms  p90 {pick(0.9):.3f} ms  p99 {pick(0.99):.3f} ms"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--calls", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlservice-bench-") as data_dir:
        write_feature_data(f"{data_dir}/tenants/{TENANT}/features", n=args.customers)
        store = FeatureStoreResource(data_dir=data_dir)
        started = time.perf_counter()
        store.apply(TENANT)
        applied = time.perf_counter()
        store.materialize(TENANT, incremental=False, end=AS_OF + timedelta(days=1))
        print(f"apply {applied - started:.2f} s, full materialization {time.perf_counter() - applied:.2f} s "
              f"({args.customers} customers)")
        feast = store.store(TENANT)
        assert [r["customer_id"] for r in store.online_features(TENANT, REFS, ROWS)] == ["cust-123", "cust-456"]
        ours, raw = [], []
        for _ in range(50):  # warm-up
            store.online_features(TENANT, REFS, ROWS)
            feast.get_online_features(features=REFS, entity_rows=ROWS).to_dict()
        for _ in range(args.calls):
            t0 = time.perf_counter()
            store.online_features(TENANT, REFS, ROWS)
            t1 = time.perf_counter()
            feast.get_online_features(features=REFS, entity_rows=ROWS).to_dict()
            t2 = time.perf_counter()
            ours.append(t1 - t0)
            raw.append(t2 - t1)
        print(f"FeatureStoreResource.online_features: {_percentiles(ours)}")
        print(f"feast get_online_features().to_dict(): {_percentiles(raw)}")


if __name__ == "__main__":
    main()
