"""Feast's online store on a real Redis (the scale profile's; the session's ``redis_server``):
materialized from the same sources, every lookup answers what the SQLite store answers, for the
demo's churn views and a tenant-defined domain with two join keys; tenants share the server and
not their keys."""

from __future__ import annotations

import pytest

from resources.features.store import FeatureStoreResource
from tests.features.conftest import END, REFS, TENANT, seed_tenant
from tests.utils.products import DEMAND_FEATURES, applied_products


@pytest.fixture(scope="module")
def stores(tmp_path_factory, redis_server) -> dict[str, FeatureStoreResource]:
    """The same tenants, sources and materialization in a SQLite store and a Redis store."""
    made = {}
    for kind in ("sqlite", "redis"):
        data_dir = tmp_path_factory.mktemp(f"online-{kind}")
        store = FeatureStoreResource(data_dir=str(data_dir), online_store=kind,
                                     online_store_url=redis_server.url() if kind == "redis" else None)
        seed_tenant(data_dir, TENANT, n=120)
        store.apply(TENANT)
        store.materialize(TENANT, incremental=False, end=END)
        applied_products(store, "shop-two-keys")
        store.materialize("shop-two-keys", incremental=False)
        made[kind] = store
    return made


def test_churn_lookups_from_redis_equal_sqlite(stores):
    rows = [{"customer_id": f"cust-{i}"} for i in (*range(1, 121, 7), 9999)]  # 9999: no such customer
    on_redis = stores["redis"].online_features(TENANT, REFS, rows)
    assert on_redis == stores["sqlite"].online_features(TENANT, REFS, rows)
    assert on_redis[-1]["status"] == "missing" and on_redis[0]["status"] != "missing"
    by_service = [stores[k].online_features_for_service(TENANT, "churn_v2", rows[:5]) for k in ("sqlite", "redis")]
    assert by_service[0] == by_service[1]


def test_two_join_keys_from_redis_equal_sqlite(stores):
    rows = [{"store_id": f"s{s}", "sku": sku} for s in (1, 2, 3, 7) for sku in (1, 5, 20)]
    answers = [stores[k].online_features_for_service("shop-two-keys", "demand_v1", rows) for k in ("sqlite", "redis")]
    assert answers[0] == answers[1]
    assert all(r["status"] == "missing" for r in answers[1] if r["store_id"] == "s7")
    assert all(r[DEMAND_FEATURES[1]] is not None for r in answers[1] if r["store_id"] != "s7")


def test_tenants_on_one_redis_keep_their_own_keys(stores, redis_server):
    """Two tenants with the same entity keys write distinct Redis keys (Feast's key holds the project)."""
    other = "acme-twin"
    store = stores["redis"]
    seed_tenant(store.source_dir(other).parents[2], other, n=120, seed=99)  # other values for the same ids
    store.apply(other)
    store.materialize(other, incremental=False, end=END)
    rows = [{"customer_id": f"cust-{i}"} for i in range(1, 30)]
    assert store.online_features(other, REFS, rows) != store.online_features(TENANT, REFS, rows)
    assert store.online_features(TENANT, REFS, rows) == stores["sqlite"].online_features(TENANT, REFS, rows)
    assert redis_server.client().dbsize() >= 2 * 120 + 3 * 20  # the rows are in Redis: a hash per entity key
