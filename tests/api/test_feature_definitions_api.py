"""A tenant's own feature definitions through the API (PUT/GET /api/v1/features/definitions), on a
real Feast store under the test data directory: a product domain (store_id string + sku int64
join keys from two entities, two views, one service) on generated data; dry runs plan without
applying, a document's problems all come back in one 400, revisions are kept, the views list
their schema and last materialized window, lookups and predictions by entity use the two join
keys, removing what a production model reads is 409 naming it, and another tenant (the demo's
churn definitions) is untouched."""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime

import pandas as pd
import pytest

from tests.api.test_predictions_by_entity import _trained_on
from tests.features.conftest import features_dir
from tests.utils.api import error_envelope, register_model
from tests.utils.mlflow_models import log_fitted_model
from tests.utils.products import DOCUMENT, write_products
from tests.utils.tokens import auth, make_token


def _log_demand_model(settings, tenant: str, frames: dict[str, pd.DataFrame]) -> str:
    """A logistic model of demand_v1's features, with their types (units int64, prices float64)."""
    from sklearn.linear_model import LogisticRegression

    frame = frames["sales"][["units_7d"]].join(frames["prices"][["price", "discount"]])
    labels = (frame["units_7d"] > 50).astype(int)
    return log_fitted_model(settings, tenant, LogisticRegression(max_iter=500).fit(frame, labels), frame, example_rows=None)


@pytest.fixture(scope="module")
def shop(client, settings):
    tenant = f"shop-{uuid.uuid4().hex[:8]}"
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    frames = write_products(features_dir(settings.data_dir, tenant).parent, today)
    return {"tenant": tenant, "headers": auth(make_token(tenant)), "frames": frames}


def _put(client, shop, document, **params):
    return client.put("/api/v1/features/definitions", json=document, headers=shop["headers"], params=params)


def test_a_dry_run_plans_and_applies_nothing(client, shop):
    answer = _put(client, shop, DOCUMENT, dry_run="true")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["dry_run"] is True and body["revision"] is None
    assert body["plan"]["added"] == sorted(["entity:store", "entity:product", "source:sales_source", "source:price_source",
                                            "feature_view:sales", "feature_view:prices", "feature_service:demand_v1"])
    nothing = client.get("/api/v1/features/definitions", headers=shop["headers"])
    error_envelope(nothing, 404, "FEATURE_STORE_NOT_FOUND")
    assert client.get("/api/v1/features/views", headers=shop["headers"]).status_code == 404


def test_every_problem_of_a_document_is_one_400_and_nothing_is_stored(client, shop):
    broken = copy.deepcopy(DOCUMENT)
    broken["feature_views"][0]["fields"].append({"name": "margin", "type": "float64"})  # no such column
    broken["feature_views"][1]["fields"][0]["type"] = "int64"  # price is a float column
    broken["sources"][1]["path"] = "../../other-tenant/products/prices.parquet"  # outside the tenant's area
    broken["feature_services"][0]["features"].append("stock:level")  # unknown view
    answer = _put(client, shop, broken)
    error = error_envelope(answer, 400, "INVALID_REQUEST")
    listed = {(p["object"], p["problem"].split(" ")[0]) for p in error["details"]["problems"]}
    assert ("feature_view:sales", "'margin'") in listed
    assert ("source:price_source", "data") in listed  # "data path not allowed: ..."
    assert ("feature_service:demand_v1", "'stock:level':") in listed
    assert len(error["details"]["problems"]) == 3  # the price view is not checked against an unreadable source
    unknown_type = copy.deepcopy(DOCUMENT)
    unknown_type["feature_views"][0]["fields"][0]["type"] = "decimal"
    assert _put(client, shop, unknown_type).status_code == 400
    assert client.get("/api/v1/features/definitions", headers=shop["headers"]).status_code == 404


def test_applied_definitions_serve_lookups_and_predictions_by_two_join_keys(client, settings, shop):
    churn = f"churn-{uuid.uuid4().hex[:8]}"
    from mlservice.demo.feature_data import write_feature_data

    write_feature_data(features_dir(settings.data_dir, churn), n=50, seed=2)
    feature_store = client.app.state.feature_store
    feature_store.apply(churn)
    churn_catalog = feature_store.feature_views(churn)

    applied = _put(client, shop, DOCUMENT)
    assert applied.status_code == 200, applied.text
    assert applied.json()["revision"] == 1 and applied.json()["dry_run"] is False
    again = _put(client, shop, DOCUMENT)  # the same document again: applied, no new revision
    assert again.status_code == 200 and again.json()["revision"] == 1 and again.json()["plan"]["added"] == []
    current = client.get("/api/v1/features/definitions", headers=shop["headers"]).json()
    assert current["revision"] == 1 and current["revisions"] == [1]
    assert current["document"]["feature_views"][0]["name"] == "sales" and current["applied_by"]

    views = {v["name"]: v for v in client.get("/api/v1/features/views", headers=shop["headers"]).json()["feature_views"]}
    assert set(views) == {"sales", "prices"}
    assert views["sales"]["schema"] == [{"name": "store_id", "type": "string"}, {"name": "sku", "type": "int64"},
                                        {"name": "units_7d", "type": "int64"}, {"name": "returns_7d", "type": "int64"}]
    assert views["sales"]["join_keys"] == ["store_id", "sku"] and views["sales"]["last_materialized"] is None

    feature_store.materialize(shop["tenant"], incremental=False)
    views = {v["name"]: v for v in client.get("/api/v1/features/views", headers=shop["headers"]).json()["feature_views"]}
    assert views["prices"]["last_materialized"]["end"] is not None

    rows = [{"store_id": "s2", "sku": 7}, {"store_id": "s3", "sku": 20}, {"store_id": "s9", "sku": 1}]
    looked = client.post("/api/v1/features/online", headers=shop["headers"],
                         json={"feature_service": "demand_v1", "entity_rows": rows})
    assert looked.status_code == 200, looked.text
    results = looked.json()["results"]
    prices = shop["frames"]["prices"]
    newest = prices.sort_values("observed_at").groupby(["store_id", "sku"]).tail(1).set_index(["store_id", "sku"])
    assert results[0]["price"] == pytest.approx(newest.loc[("s2", 7), "price"])
    assert results[1]["discount"] == pytest.approx(newest.loc[("s3", 20), "discount"])
    assert results[2]["status"] == "missing"  # no such store

    run_id = _trained_on(settings, _log_demand_model(settings, shop["tenant"], shop["frames"]), "demand_v1")
    model_id = register_model(client, shop["headers"], run_id, "demand")
    answer = client.post("/api/v1/predictions", headers=shop["headers"],
                         json={"model_id": model_id, "entity": {"store_id": "s2", "sku": 7}})
    assert answer.status_code == 200, answer.text
    assert answer.json()["features"]["price"] == pytest.approx(newest.loc[("s2", 7), "price"])
    assert feature_store.feature_views(churn) == churn_catalog  # the other tenant's definitions are untouched
    shop["model_id"] = model_id


def test_removing_what_a_production_model_reads_is_409_naming_it_and_revisions_are_kept(client, shop):
    model_id = shop["model_id"]
    promoted = client.put(f"/api/v1/models/{model_id}/stage", headers=shop["headers"],
                          json={"version": "1.0.0", "target_stage": "production", "via": "staging"})
    assert promoted.status_code == 200, promoted.text

    without_prices = copy.deepcopy(DOCUMENT)
    without_prices["feature_views"] = without_prices["feature_views"][:1]
    without_prices["sources"] = without_prices["sources"][:1]
    without_prices["feature_services"][0]["features"] = ["sales:units_7d"]
    refused = _put(client, shop, without_prices)
    error = error_envelope(refused, 409, "FEATURE_DEFINITION_IN_USE")
    assert "demand 1.0.0" in error["message"]
    assert error["details"]["models"][0]["model_id"] == model_id
    assert "prices:price" in error["details"]["models"][0]["lost"]
    assert _put(client, shop, without_prices, dry_run="true").status_code == 409  # a dry run says so too

    # a change that keeps what the model reads: applied as revision 2, revision 1 still readable
    wider = copy.deepcopy(DOCUMENT)
    wider["feature_services"].append({"name": "sales_only", "features": ["sales"]})
    wider["feature_views"][0]["ttl_seconds"] = 14 * 86400
    applied = _put(client, shop, wider)
    assert applied.status_code == 200, applied.text
    assert applied.json()["plan"]["added"] == ["feature_service:sales_only"]
    assert applied.json()["plan"]["changed"] == ["feature_view:sales"] and applied.json()["revision"] == 2
    first = client.get("/api/v1/features/definitions", headers=shop["headers"], params={"revision": 1}).json()
    assert first["revision"] == 1 and first["revisions"] == [1, 2] and len(first["document"]["feature_services"]) == 1
    missing = client.get("/api/v1/features/definitions", headers=shop["headers"], params={"revision": 9})
    error_envelope(missing, 404, "FEATURE_DEFINITIONS_NOT_FOUND")
    services = {s["name"] for s in client.get("/api/v1/features/views", headers=shop["headers"]).json()["feature_services"]}
    assert services == {"demand_v1", "sales_only"}


def test_a_change_while_another_is_applied_is_409(client, shop):
    """Two changes of one tenant never interleave (the registry and the newest revision agree):
    a change is refused at once while another holds the tenant's lease."""
    state = client.app.state.state_store
    key = f"feature-definitions:{shop['tenant']}"
    assert state.try_lock(key, "another-process", lease_s=60)
    try:
        refused = _put(client, shop, DOCUMENT)
        error_envelope(refused, 409, "FEATURE_DEFINITIONS_CONFLICT")
    finally:
        state.unlock(key, "another-process")
    assert _put(client, shop, DOCUMENT, dry_run="true").status_code == 200


def test_definitions_without_a_view_have_nothing_to_materialize(client):
    """An empty document is a valid one (a tenant clears its definitions); materializing it is a
    400 before any run (found by the schemathesis run: it launched a run of nothing)."""
    headers = auth(make_token(f"empty-{uuid.uuid4().hex[:8]}"))
    applied = client.put("/api/v1/features/definitions", json={}, headers=headers)
    assert applied.status_code == 200 and applied.json()["revision"] == 1, applied.text
    assert client.get("/api/v1/features/views", headers=headers).json() == {"feature_views": [], "feature_services": []}
    refused = client.post("/api/v1/features/materialize", json={}, headers=headers)
    assert error_envelope(refused, 400, "INVALID_REQUEST")["message"].startswith("this tenant's feature definitions have no")


def test_sources_on_s3_are_checked_materialized_looked_up_and_joined(client, s3_server, monkeypatch, tmp_path):
    """Sources may be s3:// objects of a bucket the tenant is granted (the data-access policy):
    their footers are checked on the server, Feast materializes and joins them through the
    project's S3 filesystem (no s3fs); a bucket not granted is a problem of the document."""
    tenant = f"s3shop-{uuid.uuid4().hex[:8]}"
    headers = auth(make_token(tenant))
    bucket = s3_server.bucket("features")
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    frames = write_products(tmp_path, today)  # generated here, then put on the S3 server only
    for name in ("sales", "prices"):
        s3_server.put_parquet(f"s3://{bucket}/products/{name}.parquet", frames[name])
    service = client.app.state.feature_definitions
    monkeypatch.setattr(service, "policy", s3_server.policy(service.policy.data_dir, tenant_buckets={tenant: [bucket]}))
    document = copy.deepcopy(DOCUMENT)
    for source in document["sources"]:
        source["path"] = f"s3://{bucket}/{source['path']}"

    not_granted = copy.deepcopy(document)
    not_granted["sources"][1]["path"] = "s3://someone-elses-bucket/products/prices.parquet"
    wrong_type = copy.deepcopy(document)
    wrong_type["feature_views"][1]["fields"][0]["type"] = "int64"  # read from the S3 object's footer: a float
    problems = [error_envelope(client.put("/api/v1/features/definitions", json=d, headers=headers), 400,
                               "INVALID_REQUEST")["details"]["problems"] for d in (not_granted, wrong_type)]
    assert [p["object"] for p in problems[0]] == ["source:price_source"], problems[0]
    assert [p["object"] for p in problems[1]] == ["feature_view:prices"] and "double" in problems[1][0]["problem"]

    applied = client.put("/api/v1/features/definitions", json=document, headers=headers)
    assert applied.status_code == 200, applied.text
    feature_store = client.app.state.feature_store
    feature_store.materialize(tenant, incremental=False)
    looked = client.post("/api/v1/features/online", headers=headers,
                         json={"feature_service": "demand_v1", "entity_rows": [{"store_id": "s1", "sku": 3}]})
    assert looked.status_code == 200, looked.text
    prices = frames["prices"]
    newest = prices.sort_values("observed_at").groupby(["store_id", "sku"]).tail(1).set_index(["store_id", "sku"])
    assert looked.json()["results"][0]["price"] == pytest.approx(newest.loc[("s1", 3), "price"])

    labels = frames["labels"]
    joined = feature_store.historical_features(tenant, labels, feature_service="demand_v1")
    assert len(joined) == len(labels) and joined["units_7d"].notna().all()
    sales = frames["sales"].set_index(["store_id", "sku", "observed_at"])
    first = joined.iloc[0]
    assert first["units_7d"] == sales.loc[(first["store_id"], first["sku"], today), "units_7d"]
