"""POST /api/v1/predictions by entity, on a real Feast store under the test data directory: the
features come from the model version's feature service (the version tag training sets), the
response reports the values used and they equal the online store's; missing values, models
without a feature service, services lacking a model feature, bad join keys and other tenants are
refused; the prediction log keeps the features used and the entity."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from mlservice.demo.feature_data import write_feature_data
from resources.vocabulary import T_FEATURE_SERVICE
from tests.features.conftest import features_dir
from tests.utils.api import error_envelope, register_model
from tests.utils.mlflow_models import FEATURES, log_fitted_model, log_sklearn_model
from tests.utils.tokens import auth, make_token

ORDER_FEATURES = ["orders_last_30d", "return_rate", "days_since_first_order"]
NOBODY = {"customer_id": "cust-999999"}


def _trained_on(settings, run_id: str, feature_service: str) -> str:
    """What training does: the run carries the feature service; registering it tags the version."""
    from mlflow import MlflowClient

    uri = settings.effective_tracking_uri
    MlflowClient(tracking_uri=uri, registry_uri=uri).set_tag(run_id, T_FEATURE_SERVICE, feature_service)
    return run_id


def _log_model_on(settings, tenant: str, columns: list[str]) -> str:
    """A logistic model whose signature is ``columns`` (integers); returns the run id."""
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({c: rng.integers(0, 50, 200).astype("int64") for c in columns})
    labels = (frame[columns[0]] > 25).astype(int)
    model = LogisticRegression(max_iter=500).fit(frame, labels)
    return log_fitted_model(settings, tenant, model, frame, example_rows=None)


@pytest.fixture(scope="module")
def store(client, settings):
    """A tenant with 200 customers applied and materialized (snapshots up to today), a forest
    'churn' trained from churn_v1 and a logistic 'plain' with the same features but no service."""
    tenant = f"ent-{uuid.uuid4().hex[:8]}"
    headers = auth(make_token(tenant))
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    write_feature_data(features_dir(settings.data_dir, tenant), n=200, seed=5, as_of=today)  # within the views' 90-day ttl
    feature_store = client.app.state.feature_store
    feature_store.apply(tenant)
    feature_store.materialize(tenant, incremental=False)
    forest = _trained_on(settings, log_sklearn_model(settings, tenant, kind="forest"), "churn_v1")
    model_id = register_model(client, headers, forest, "churn")
    plain_id = register_model(client, headers, log_sklearn_model(settings, tenant, kind="logistic"), "plain")
    return {"tenant": tenant, "headers": headers, "model_id": model_id, "plain_id": plain_id, "fs": feature_store}


def _predict(client, store, headers=None, **body):
    payload = {"model_id": store["model_id"], **body}
    return client.post("/api/v1/predictions", json=payload, headers=headers or store["headers"])


def _records(client, store, request_id: str) -> list[dict]:
    records = client.app.state.prediction_log.records(store["tenant"], limit=1000)
    return [r for r in records if r["request_id"] == request_id]


def test_entity_prediction_uses_the_online_values_and_equals_a_features_prediction(client, store):
    entity = {"customer_id": "cust-7"}
    response = _predict(client, store, entity=entity)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["entity"] == entity and body["feature_service"] == "churn_v1" and body["version"] == "1.0.0"
    [online] = store["fs"].online_features_for_service(store["tenant"], "churn_v1", [entity])
    assert online["status"] == "ok"
    assert body["features"] == {name: online[name] for name in FEATURES}  # exactly the signature's features
    assert isinstance(body["features"]["total_orders"], int) and isinstance(body["features"]["avg_order_value"], float)
    by_features = _predict(client, store, features=body["features"]).json()
    for key in ("prediction", "probabilities", "confidence"):
        assert body[key] == by_features[key]
    assert by_features["entity"] is None and by_features["features"] is None  # the features path is unchanged


def test_entities_answer_one_row_each_like_instances(client, store):
    entities = [{"customer_id": f"cust-{i}"} for i in (3, 50, 199)]
    body = _predict(client, store, entities=entities).json()
    assert body["entities"] == entities and body["entity"] is None
    assert len(body["prediction"]) == len(body["confidence"]) == len(body["features"]) == 3
    online = store["fs"].online_features_for_service(store["tenant"], "churn_v1", entities)
    assert body["features"] == [{name: row[name] for name in FEATURES} for row in online]
    by_instances = _predict(client, store, instances=body["features"]).json()
    assert body["probabilities"] == by_instances["probabilities"]


def test_the_log_record_holds_the_features_used_and_the_entity(client, store):
    entity = {"customer_id": "cust-12"}
    response = _predict(client, store, entity=entity)
    assert response.status_code == 200, response.text
    body = response.json()
    [record] = _records(client, store, body["request_id"])
    assert record["features"] == [body["features"]] and record["model_version"] == "1.0.0"
    assert record["outputs"]["entities"] == [entity] and record["outputs"]["feature_service"] == "churn_v1"
    assert record["outputs"]["prediction"] == body["prediction"]


def test_stored_values_are_returned_only_to_a_token_that_may_read_features(client, store):
    """A predictions:write token must not read the online store through a prediction: the values
    are left out (the prediction still answers); with features:read as well they are returned."""
    entity, entities = {"customer_id": "cust-31"}, [{"customer_id": "cust-32"}, {"customer_id": "cust-33"}]
    writer = auth(make_token(store["tenant"], scopes=("predictions:write",)))
    reader = auth(make_token(store["tenant"], scopes=("predictions:write", "features:read")))
    for body in ({"entity": entity}, {"entities": entities}):
        blind = _predict(client, store, headers=writer, **body)
        assert blind.status_code == 200, blind.text
        assert blind.json()["features"] is None
        assert blind.json()["feature_service"] == "churn_v1" and blind.json()["prediction"]
        seeing = _predict(client, store, headers=reader, **body).json()
        assert seeing["features"] is not None and seeing["prediction"] == blind.json()["prediction"]
    [online] = store["fs"].online_features_for_service(store["tenant"], "churn_v1", [entity])
    assert _predict(client, store, headers=reader, entity=entity).json()["features"] == {n: online[n] for n in FEATURES}
    # explanations would reveal the values too (a linear model's contribution is coef * (x - mean))
    options = {"return_explanation": True}
    blind = _predict(client, store, headers=writer, entity=entity, options=options).json()["explanation"]
    assert blind["method"] == "unavailable" and "features:read" in blind["reason"]
    seeing = _predict(client, store, headers=reader, entity=entity, options=options).json()["explanation"]
    assert seeing["method"] != "unavailable" and set(seeing["contributions"]) == set(FEATURES)


def test_an_entity_without_stored_values_is_422_listing_the_features(client, store):
    response = _predict(client, store, entity=NOBODY)
    error = error_envelope(response, 422, "VALIDATION_ERROR")
    assert error["details"]["missing"] == sorted(FEATURES)
    assert {p["feature"] for p in error["details"]["problems"]} == set(FEATURES)
    assert all(p["entity"] == NOBODY for p in error["details"]["problems"])
    assert _records(client, store, response.headers["x-request-id"]) == []  # never predicted on nulls
    mixed = _predict(client, store, entities=[{"customer_id": "cust-1"}, NOBODY])
    problems = error_envelope(mixed, 422, "VALIDATION_ERROR")["details"]["problems"]
    assert {p["instance"] for p in problems} == {1}


def test_a_model_without_a_feature_service_is_422(client, store):
    response = _predict(client, store, model_id=store["plain_id"], entity={"customer_id": "cust-7"})
    error = error_envelope(response, 422, "VALIDATION_ERROR")
    assert "feature service" in error["message"] and "'features'" in error["message"]
    assert _predict(client, store, model_id=store["plain_id"], features={n: 1 for n in FEATURES}).status_code == 200


def test_only_the_signature_features_of_a_larger_service_are_used(client, settings, store):
    run_id = _trained_on(settings, log_sklearn_model(settings, store["tenant"], kind="logistic"), "churn_v2")
    model_id = register_model(client, store["headers"], run_id, "v2")  # churn_v2: churn_v1's features plus the order features
    body = _predict(client, store, model_id=model_id, entity={"customer_id": "cust-7"}).json()
    assert body["feature_service"] == "churn_v2" and list(body["features"]) == FEATURES


def test_a_service_lacking_a_model_feature_is_422(client, settings, store):
    run_id = _log_model_on(settings, store["tenant"], FEATURES + ORDER_FEATURES)
    model_id = register_model(client, store["headers"], _trained_on(settings, run_id, "churn_v1"), "wide")
    error = error_envelope(_predict(client, store, model_id=model_id, entity={"customer_id": "cust-7"}), 422, "VALIDATION_ERROR")
    assert error["details"]["absent"] == ORDER_FEATURES and error["details"]["feature_service"] == "churn_v1"
    run_id = _trained_on(settings, log_sklearn_model(settings, store["tenant"]), "churn_v9")  # not defined in the store
    model_id = register_model(client, store["headers"], run_id, "unknown-service")
    error = error_envelope(_predict(client, store, model_id=model_id, entity={"customer_id": "cust-7"}), 404, "FEATURE_SERVICE_NOT_FOUND")
    assert error["details"]["feature_service"] == "churn_v9"


@pytest.mark.parametrize(
    "entity,message",
    [({"user_id": "cust-7"}, "join keys"), ({"customer_id": 7}, "wrong type"), ({"customer_id": None}, "wrong type"),
     ({"customer_id": "cust-7", "region": "eu"}, "join keys"), ({}, "join keys")],
)
def test_bad_join_keys_are_400(client, store, entity, message):
    error = error_envelope(_predict(client, store, entity=entity), 400, "INVALID_REQUEST")
    assert message in error["message"]


def test_request_shapes(client, store):
    entity = {"customer_id": "cust-7"}
    for body in ({"entity": entity, "features": {n: 1 for n in FEATURES}}, {"entity": entity, "entities": [entity]},
                 {"entities": []}, {"entities": [entity] * 501}):
        assert _predict(client, store, **body).status_code in (400, 413), body
    explained = {"entities": [entity] * 11, "options": {"return_explanation": True}}
    assert _predict(client, store, **explained).status_code == 400


def test_explanations_work_by_entity(client, store):
    body = _predict(client, store, entity={"customer_id": "cust-21"}, options={"return_explanation": True}).json()
    explanation = body["explanation"]
    assert set(explanation["contributions"]) == set(FEATURES)
    assert explanation["base_value"] + sum(explanation["contributions"].values()) == pytest.approx(explanation["output"], abs=1e-6)
    assert explanation["output"] == pytest.approx(body["confidence"], abs=1e-9)


def test_other_tenants_get_404_or_their_own_store(client, settings, store):
    entity = {"customer_id": "cust-7"}
    other = f"oth-{uuid.uuid4().hex[:8]}"
    other_headers = auth(make_token(other))
    # another tenant's model answers like a random id
    error_envelope(_predict(client, store, headers=other_headers, entity=entity), 404, "MODEL_NOT_FOUND")
    # the other tenant's own churn_v1 model, before it has a feature store: 404, not this tenant's values
    own_run = _trained_on(settings, log_sklearn_model(settings, other, kind="logistic"), "churn_v1")
    own = register_model(client, other_headers, own_run, "churn")
    error_envelope(_predict(client, store, headers=other_headers, model_id=own, entity=entity), 404, "FEATURE_STORE_NOT_FOUND")
    # with a store of its own (applied, nothing materialized), this tenant's customer has no values there
    write_feature_data(features_dir(settings.data_dir, other), n=20, seed=9)
    store["fs"].apply(other)
    error = error_envelope(_predict(client, store, headers=other_headers, model_id=own, entity=entity), 422, "VALIDATION_ERROR")
    assert error["details"]["missing"] == sorted(FEATURES)



def test_monitoring_reads_the_values_used_by_entity(client, store):
    """Drift by entity compares the values the model was given (the online store's), as read back
    from the prediction log by the monitoring window."""
    from datetime import timedelta

    from mlservice.monitoring.traffic_window import current_sample
    from resources.infra.state_db import utcnow
    from tests.utils.columns import listed

    entities = [{"customer_id": f"cust-{i}"} for i in range(40, 75)]
    before = utcnow()
    response = _predict(client, store, entities=entities)
    assert response.status_code == 200, response.text
    online = store["fs"].online_features_for_service(store["tenant"], "churn_v1", entities)
    sample = current_sample(client.app.state.state_store, store["tenant"], store["model_id"], FEATURES, before,
                            utcnow() + timedelta(seconds=1))
    assert sample.rows == len(entities) and sample.versions == {"1.0.0": len(entities)}
    for name in FEATURES:
        assert listed(sample.columns[name]) == [row[name] for row in online], name
