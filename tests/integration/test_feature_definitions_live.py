"""A tenant's own feature domain end to end on the running platform: a shop (store_id string and
sku int64 join keys, two views, one service; generated data, tests/utils/products.py) defined
through PUT /api/v1/features/definitions, materialized by the Dagster job, looked up, trained on
its service and predicted by entity, through the API only; the demo tenant's churn features
answer as before."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest

from tests.integration.conftest import DEMO_TENANT
from tests.utils.platform import follow_job, integration_marks, tenant_client
from tests.utils.products import DOCUMENT, write_products

TENANT = "shop-live"
pytestmark = integration_marks(timeout_s=900)


@pytest.fixture(scope="module")
def shop(platform):
    up = platform["current"]
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    previous = os.umask(0o077)  # owner-only, as the platform keeps its data dir (test_platform_up checks it)
    try:
        frames = write_products(up.data_dir / "tenants" / TENANT, today, stores=4, skus=40)
    finally:
        os.umask(previous)
    with tenant_client(up, TENANT) as client:
        yield client, frames


def test_a_tenant_defined_domain_is_materialized_looked_up_trained_on_and_predicted_by_entity(up, shop):
    api, frames = shop
    applied = api.put("/api/v1/features/definitions", json=DOCUMENT)
    assert applied.status_code == 200 and applied.json()["revision"] == 1, applied.text

    accepted = api.post("/api/v1/features/materialize", json={"incremental": False})
    assert accepted.status_code == 202 and sorted(accepted.json()["feature_views"]) == ["prices", "sales"], accepted.text
    materialized = follow_job(api, f"/api/v1/jobs/{accepted.json()['job_id']}", timeout_s=300)
    assert materialized["status"] == "succeeded" and materialized["result"]["sales"]["entities"] == 160, materialized

    newest = frames["prices"].sort_values("observed_at").groupby(["store_id", "sku"]).tail(1).set_index(["store_id", "sku"])
    looked = api.post("/api/v1/features/online", json={"feature_service": "demand_v1",
                                                      "entity_rows": [{"store_id": "s3", "sku": 17}]})
    assert looked.status_code == 200, looked.text
    assert looked.json()["results"][0]["price"] == pytest.approx(newest.loc[("s3", 17), "price"])

    training = api.post("/api/v1/training", json={
        "model_name": "demand", "estimator": "logistic_regression", "hyperparameters": {"max_iter": 500},
        "data_config": {"train_path": "products/labels.parquet", "target_column": "high_demand", "feature_service": "demand_v1"}})
    assert training.status_code == 202, training.text
    trained = follow_job(api, f"/api/v1/training/{training.json()['job_id']}")
    assert trained["status"] == "succeeded", trained

    answer = api.post("/api/v1/predictions", json={"model_id": trained["model_id"], "entity": {"store_id": "s3", "sku": 17}})
    assert answer.status_code == 200, answer.text
    assert answer.json()["feature_service"] == "demand_v1"
    assert answer.json()["features"]["price"] == pytest.approx(newest.loc[("s3", 17), "price"])

    with tenant_client(up, DEMO_TENANT) as demo:  # the demo's churn definitions, untouched
        churn = demo.get("/api/v1/features/definitions").json()
        assert {v["name"] for v in churn["document"]["feature_views"]} == {"customer_features", "order_features"}
        row = demo.post("/api/v1/features/online", json={"feature_service": "churn_v1", "entity_rows": [{"customer_id": "cust-7"}]})
        assert row.status_code == 200 and row.json()["results"][0]["status"] == "ok", row.text
