"""Materialization lands values that lookups then return: a full window, and incremental runs
that pick up where the last one ended."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from mlservice.demo.feature_data import AS_OF
from resources.errors import FeatureViewNotFound, InvalidRequest
from resources.features.store import FeatureStoreResource
from tests.features.conftest import END, REFS, features_dir, latest_rows, seed_tenant

ROWS = [{"customer_id": f"cust-{i}"} for i in (1, 2, 3, 50)]


def _store(tmp_path, tenant: str) -> FeatureStoreResource:
    seed_tenant(tmp_path, tenant, n=100, seed=4)
    store = FeatureStoreResource(data_dir=str(tmp_path))
    store.apply(tenant)
    return store


def _expected(store, tenant, at):
    return latest_rows(features_dir(store.data_dir, tenant) / "customer_features.parquet", at)


def test_full_window_lands_the_latest_value_in_the_window(tmp_path):
    store = _store(tmp_path, "full")
    assert {a["status"] for a in store.online_features("full", REFS, ROWS)} == {"missing"}
    past = AS_OF - timedelta(days=45)  # between two monthly snapshots
    summary = store.materialize("full", ["customer_features"], incremental=False, start=AS_OF - timedelta(days=200), end=past)
    assert [v["name"] for v in summary["views"]] == ["customer_features"]
    source = pd.read_parquet(features_dir(tmp_path, "full") / "customer_features.parquet")
    in_window = source[source["event_timestamp"].between(AS_OF - timedelta(days=200), past)]
    assert summary["views"][0]["source_rows"] == len(in_window)
    assert summary["views"][0]["entities"] == in_window["customer_id"].nunique()
    answers = store.online_features("full", REFS, ROWS)
    expected = _expected(store, "full", past)
    for answer in answers:
        assert answer["total_orders"] == expected.loc[answer["customer_id"], "total_orders"]
    # order_features was not asked for: still empty
    assert store.online_features("full", ["order_features:return_rate"], ROWS[:1])[0]["status"] == "missing"
    store.materialize("full", incremental=False, end=END)
    expected = _expected(store, "full", END)
    for answer in store.online_features("full", REFS, ROWS):
        assert answer["days_since_last_order"] == expected.loc[answer["customer_id"], "days_since_last_order"]


def test_incremental_runs_continue_from_the_last_end(tmp_path):
    store = _store(tmp_path, "incr")
    first = store.materialize("incr", incremental=True, end=END)
    view = {v["name"]: v for v in first["views"]}["customer_features"]
    assert view["start"] == (END - timedelta(days=90)).isoformat()  # first run: end - ttl
    expected = _expected(store, "incr", END)
    for answer in store.online_features("incr", REFS, ROWS):
        assert answer["total_orders"] == expected.loc[answer["customer_id"], "total_orders"]
    # A new snapshot arrives after the first run's end.
    path = features_dir(tmp_path, "incr") / "customer_features.parquet"
    source = pd.read_parquet(path)
    fresh = source[source["event_timestamp"] == source["event_timestamp"].max()].copy()
    fresh["event_timestamp"] = pd.Timestamp(END + timedelta(days=5))
    fresh["total_orders"] += 1000
    pd.concat([source, fresh], ignore_index=True).to_parquet(path, index=False)
    second = store.materialize("incr", ["customer_features"], incremental=True, end=END + timedelta(days=6))
    assert second["views"][0]["start"] == END.isoformat()  # picks up where the last run ended
    assert second["views"][0]["source_rows"] == len(fresh)
    for answer in store.online_features("incr", REFS, ROWS):
        assert answer["total_orders"] == expected.loc[answer["customer_id"], "total_orders"] + 1000


def test_materialize_refusals(tmp_path):
    store = _store(tmp_path, "refuse")
    with pytest.raises(FeatureViewNotFound):
        store.materialize("refuse", ["nope"])
    with pytest.raises(InvalidRequest):
        store.materialize("refuse", incremental=True, start=AS_OF)
    with pytest.raises(InvalidRequest):
        store.materialize("refuse", incremental=False, start=END, end=AS_OF)


def test_ensure_applied_is_idempotent(tmp_path):
    seed_tenant(tmp_path, "ens", n=50)
    store = FeatureStoreResource(data_dir=str(tmp_path))
    assert store.ensure_applied("ens")["applied"] is True
    assert store.ensure_applied("ens")["applied"] is False
    assert "# Written by mlservice" in (store.repo_dir("ens") / "feature_store.yaml").read_text()


def test_a_reader_sees_what_another_store_object_materialized(tmp_path):
    """The API's cached store (reader) and a run worker's store (writer) share only files."""
    writer = _store(tmp_path, "shared")
    reader = FeatureStoreResource(data_dir=str(tmp_path))
    assert reader.online_features("shared", REFS, ROWS[:1])[0]["status"] == "missing"
    writer.materialize("shared", incremental=False, end=END)
    assert reader.online_features("shared", REFS, ROWS[:1])[0]["status"] == "ok"
