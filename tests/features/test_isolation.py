"""Tenants are isolated: each has its own Feast project, registry and online store; the same
view names in two tenants hold each tenant's own values."""

from __future__ import annotations

import pytest

from resources.errors import FeatureStoreNotFound, FeatureViewNotFound
from resources.features.feast_config import project_name
from resources.features.store import FeatureStoreResource
from tests.features.conftest import END, REFS, features_dir, latest_rows, seed_tenant

A, B, C = "tenant-a", "tenant-b", "tenant-c"


@pytest.fixture(scope="module")
def two_tenants(tmp_path_factory) -> FeatureStoreResource:
    data_dir = tmp_path_factory.mktemp("isolation")
    seed_tenant(data_dir, A, n=200, seed=1)
    seed_tenant(data_dir, B, n=50, seed=2)  # same view names, other customers and values
    store = FeatureStoreResource(data_dir=str(data_dir))
    for tenant in (A, B):
        store.apply(tenant)
    store.materialize(A, incremental=False, end=END)
    return store


def test_each_tenant_reads_its_own_values(two_tenants):
    rows = [{"customer_id": "cust-10"}, {"customer_id": "cust-150"}]
    a = two_tenants.online_features(A, REFS, rows)
    b = two_tenants.online_features(B, REFS, rows)
    assert a[0]["status"] == a[1]["status"] == "ok"
    # B's views were never materialized: A's values do not show through the same view names
    assert [r["status"] for r in b] == ["missing", "missing"]
    two_tenants.materialize(B, incremental=False, end=END)
    b = two_tenants.online_features(B, REFS, rows)
    expected_b = latest_rows(features_dir(two_tenants.data_dir, B) / "customer_features.parquet")
    assert b[0]["total_orders"] == expected_b.loc["cust-10", "total_orders"]
    assert b[1]["status"] == "missing"  # B has 50 customers; cust-150 exists only in A
    expected_a = latest_rows(features_dir(two_tenants.data_dir, A) / "customer_features.parquet")
    assert two_tenants.online_features(A, REFS, rows)[0]["avg_order_value"] == pytest.approx(
        expected_a.loc["cust-10", "avg_order_value"])
    assert expected_a.loc["cust-10", "avg_order_value"] != expected_b.loc["cust-10", "avg_order_value"]


def test_separate_projects_registries_and_stores(two_tenants):
    assert project_name(A) != project_name(B)
    assert project_name("a-b") != project_name("a_b") and project_name("Acme") != project_name("acme")
    for tenant in (A, B):
        repo = two_tenants.repo_dir(tenant)
        assert (repo / "registry.db").is_file() and (repo / "online_store.db").is_file()
        assert two_tenants.store(tenant).project == project_name(tenant)
    assert two_tenants.tenants() == [A, B]


def test_a_tenant_without_a_store_sees_nothing_of_others(two_tenants):
    with pytest.raises(FeatureStoreNotFound):
        two_tenants.online_features(C, REFS, [{"customer_id": "cust-1"}])
    with pytest.raises(FeatureStoreNotFound):
        two_tenants.materialize(C, incremental=True)
    with pytest.raises(FeatureStoreNotFound):
        two_tenants.ensure_applied(C)  # no feature data of its own either
    assert not two_tenants.repo_dir(C).exists()


def test_views_are_per_tenant(two_tenants, tmp_path):
    # A fresh resource on the same data dir (another process, say) finds the same per-tenant stores.
    other = FeatureStoreResource(data_dir=two_tenants.data_dir)
    assert {v["name"] for v in other.feature_views(B)} == {"customer_features", "order_features"}
    with pytest.raises(FeatureViewNotFound):
        other.online_features(B, ["tenant_a_only:x"], [{"customer_id": "cust-1"}])
