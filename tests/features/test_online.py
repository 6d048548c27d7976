"""Online lookups through FeatureStoreResource: the same answers as Feast's SDK, the seed's
shape, missing entities marked, bad refs and unknown names refused with the name."""

from __future__ import annotations

import pytest

from resources.errors import (
    FeatureNotFound,
    FeatureRefInvalid,
    FeatureServiceNotFound,
    FeatureStoreNotFound,
    FeatureViewNotFound,
    InvalidRequest,
)
from tests.features.conftest import REFS, TENANT, features_dir, latest_rows

ROWS = [{"customer_id": "cust-123"}, {"customer_id": "cust-45"}]


def test_answers_equal_feast_sdk(feature_store):
    refs = [*REFS, "order_features:orders_last_30d", "order_features:return_rate"]
    rows = [*ROWS, {"customer_id": "cust-nobody"}, {"customer_id": "cust-7"}]
    answers = feature_store.online_features(TENANT, refs, rows)
    sdk = feature_store.store(TENANT).get_online_features(features=refs, entity_rows=rows).to_dict()
    assert [a["customer_id"] for a in answers] == [r["customer_id"] for r in rows]
    for i, answer in enumerate(answers):
        for ref in refs:
            name = ref.split(":")[1]
            assert answer[name] == sdk[name][i]


def test_seed_shape_and_values_from_the_latest_snapshot(feature_store):
    answers = feature_store.online_features(TENANT, REFS, ROWS)
    latest = latest_rows(features_dir(feature_store.data_dir, TENANT) / "customer_features.parquet")
    for answer in answers:
        assert list(answer) == ["customer_id", "total_orders", "avg_order_value", "days_since_last_order", "status", "missing"]
        expected = latest.loc[answer["customer_id"]]
        assert answer["total_orders"] == expected["total_orders"] and isinstance(answer["total_orders"], int)
        assert answer["avg_order_value"] == pytest.approx(expected["avg_order_value"])
        assert answer["days_since_last_order"] == expected["days_since_last_order"]
        assert answer["status"] == "ok" and answer["missing"] == []


def test_missing_entities_are_marked_not_dropped(feature_store):
    rows = [{"customer_id": "cust-999999"}, {"customer_id": "cust-1"}, {"customer_id": "cust-888888"}]
    answers = feature_store.online_features(TENANT, REFS, rows)
    assert [a["customer_id"] for a in answers] == ["cust-999999", "cust-1", "cust-888888"]
    for answer in (answers[0], answers[2]):
        assert answer["status"] == "missing"
        assert answer["missing"] == ["total_orders", "avg_order_value", "days_since_last_order"]
        assert answer["total_orders"] is None and answer["avg_order_value"] is None
    assert answers[1]["status"] == "ok"


def test_feature_service_lookup(feature_store):
    answers = feature_store.online_features_for_service(TENANT, "churn_v1", ROWS)
    assert list(answers[0])[1:5] == ["total_orders", "days_since_last_order", "avg_order_value", "support_tickets"]
    direct = feature_store.online_features(TENANT, feature_store.service_refs(TENANT, "churn_v1"), ROWS)
    assert answers == direct
    with pytest.raises(FeatureServiceNotFound) as err:
        feature_store.online_features_for_service(TENANT, "churn_v9", ROWS)
    assert err.value.code == "FEATURE_SERVICE_NOT_FOUND" and err.value.details == {"feature_service": "churn_v9"}


def test_listing(feature_store):
    views = {v["name"]: v for v in feature_store.feature_views(TENANT)}
    assert views["customer_features"]["features"] == ["total_orders", "avg_order_value", "days_since_last_order", "support_tickets"]
    assert views["order_features"]["features"] == ["orders_last_30d", "return_rate", "days_since_first_order"]
    assert views["customer_features"]["join_keys"] == ["customer_id"] and views["order_features"]["ttl_seconds"] == 90 * 86400
    services = {s["name"]: s["features"] for s in feature_store.feature_services(TENANT)}
    assert services["churn_v1"] == ["customer_features:total_orders", "customer_features:days_since_last_order",
                                    "customer_features:avg_order_value", "customer_features:support_tickets"]


@pytest.mark.parametrize("refs", [
    ["customer_features"], ["customer_features:"], [":total_orders"], ["a:b:c"], ["customer features:x"], [42], [],
    "customer_features:total_orders",
])
def test_malformed_refs_are_invalid_requests(feature_store, refs):
    with pytest.raises(FeatureRefInvalid) as err:
        feature_store.online_features(TENANT, refs, ROWS)
    assert err.value.code == "INVALID_REQUEST"


def test_unknown_view_and_feature_name_themselves(feature_store):
    with pytest.raises(FeatureViewNotFound) as err:
        feature_store.online_features(TENANT, ["driver_stats:conv_rate"], ROWS)
    assert err.value.code == "FEATURE_VIEW_NOT_FOUND" and "driver_stats" in err.value.message
    assert err.value.details == {"feature_view": "driver_stats"}
    with pytest.raises(FeatureNotFound) as err:
        feature_store.online_features(TENANT, ["customer_features:total_orders", "customer_features:lifetime_value"], ROWS)
    assert err.value.code == "FEATURE_NOT_FOUND"
    assert err.value.details["feature_ref"] == "customer_features:lifetime_value"


def test_bad_entity_rows(feature_store):
    for rows in ([], [{"user_id": "cust-1"}], [{"customer_id": "cust-1", "extra": 1}], [{"customer_id": 5}], ["cust-1"]):
        with pytest.raises(InvalidRequest):
            feature_store.online_features(TENANT, REFS, rows)


def test_duplicate_refs_collapse(feature_store):
    answers = feature_store.online_features(TENANT, REFS + REFS[:1], ROWS)
    assert [k for k in answers[0] if k not in ("customer_id", "status", "missing")] == ["total_orders", "avg_order_value",
                                                                                       "days_since_last_order"]


def test_tenant_without_store(feature_store):
    with pytest.raises(FeatureStoreNotFound) as err:
        feature_store.online_features("no-such-tenant", REFS, ROWS)
    assert err.value.code == "FEATURE_STORE_NOT_FOUND"
    with pytest.raises(InvalidRequest):
        feature_store.online_features("../acme-corp", REFS, ROWS)


def test_concurrent_lookups_agree_with_serial_ones(feature_store):
    from concurrent.futures import ThreadPoolExecutor

    rows = [{"customer_id": f"cust-{i}"} for i in range(1, 40)]
    serial = [feature_store.online_features(TENANT, REFS, [row]) for row in rows]
    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in range(5):
            assert list(pool.map(lambda row: feature_store.online_features(TENANT, REFS, [row]), rows)) == serial
