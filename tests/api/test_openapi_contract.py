"""The OpenAPI document describes the API as it behaves (serving_api/openapi.py): schema errors
are 400 in the error envelope (never FastAPI's 422 validation schema), every authenticated
operation documents 401/403/429/500 and the bearer scheme, and each route's own 4xx/5xx; a 405
lists every method of the path in ``Allow``; query parameters a route does not take, or one
given twice, are 400."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def document(client):
    return client.get("/openapi.json").json()


def _operations(document):
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def test_no_operation_documents_frameworks_validation_schema(document):
    assert "HTTPValidationError" not in str(document)
    envelope = document["components"]["schemas"]["ErrorEnvelope"]
    assert envelope["required"] == ["error"] and "ErrorInfo" in document["components"]["schemas"]


def test_every_authenticated_operation_documents_auth_limits_and_faults(document):
    checked = 0
    for path, method, operation in _operations(document):
        if not path.startswith("/api/v1"):
            continue
        checked += 1
        responses = operation["responses"]
        assert {"401", "403", "429", "500"} <= set(responses), (method, path, sorted(responses))
        assert operation["security"] == [{"bearerAuth": []}], (method, path)
        if operation.get("parameters") or operation.get("requestBody"):
            assert responses["400"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorEnvelope"}
        if operation.get("requestBody"):
            assert "413" in responses, (method, path)
    assert checked >= 40


def test_routes_document_their_own_errors(document):
    assert {"404", "409", "503"} <= set(document["paths"]["/api/v1/models/{model_id}/stage"]["put"]["responses"])
    assert {"404", "422", "503"} <= set(document["paths"]["/api/v1/predictions"]["post"]["responses"])
    assert "Retry-After" in document["paths"]["/api/v1/predictions"]["post"]["responses"]["429"]["headers"]
    assert "503" in document["paths"]["/health/ready"]["get"]["responses"]
    assert "401" not in document["paths"]["/health/live"]["get"]["responses"]  # no token needed


def test_a_405_names_every_method_of_the_path(client, headers):
    reply = client.delete("/api/v1/models", headers=headers)
    assert reply.status_code == 405 and reply.headers["allow"] == "GET, POST"
    assert reply.json()["error"]["code"] == "METHOD_NOT_ALLOWED"
    assert client.put("/api/v1/models/some-id", headers=headers).headers["allow"] == "GET"


def test_unknown_or_repeated_query_parameters_are_400(client, headers):
    misspelt = client.get("/api/v1/models", params={"limt": 3}, headers=headers)
    assert misspelt.status_code == 400 and misspelt.json()["error"]["details"]["unknown"] == ["limt"]
    twice = client.get("/api/v1/models?limit=3&limit=4", headers=headers)
    assert twice.status_code == 400 and "limit" in twice.json()["error"]["message"]
    assert client.get("/api/v1/models", params={"limit": 3}, headers=headers).status_code == 200
    # thousands of repeated names: one 400 whose message stays short
    flood = client.get("/api/v1/models?" + "&".join(f"p{i % 3000}=1" for i in range(6000)), headers=headers)
    assert flood.status_code == 400 and len(flood.json()["error"]["message"]) < 300


def test_an_ensemble_quorum_beyond_its_members_is_refused_with_the_schema(client, headers):
    body = {"name": "too_few", "models": [{"model_id": "a"}, {"model_id": "b"}], "min_models_required": 3}
    reply = client.post("/api/v1/ensembles", json=body, headers=headers)
    assert reply.status_code == 400 and reply.json()["error"]["message"] == "request does not match the schema"
    assert "exceeds the number of models (2)" in str(reply.json()["error"]["details"])  # before any member is looked up


@pytest.mark.parametrize(("path", "body"), [
    # found by schemathesis against the running platform: false was stored as a cooldown of 0 hours
    ("/api/v1/monitoring/8cd10b05-9cd2-4149-94c0-0f38ce48ccea/policy",
     {"consecutive_reports": 2, "cooldown_hours": False, "promote": "none", "retrain_on_drift": False}),
    ("/api/v1/features/definitions", {"entities": [], "sources": [], "feature_services": [], "feature_views": [
        {"name": "v", "entities": ["e"], "source": "s", "fields": [{"name": "f", "type": "int64"}], "ttl_seconds": True}]}),
])
def test_true_or_false_for_a_number_is_400(client, headers, path, body):
    reply = client.put(path, json=body, headers=headers)
    assert reply.status_code == 400, reply.text
    assert "must be a number, not" in str(reply.json()["error"]["details"])


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("retrain_on_drift", 0, "must be true or false, not 0"),  # found by schemathesis on the running platform
    ("cooldown_hours", "24", "must be a number, not '24'"),
])
def test_a_number_for_a_bool_or_text_for_a_number_is_400(client, headers, field, value, expected):
    body = {"consecutive_reports": 2, "cooldown_hours": 24, "promote": "none", "retrain_on_drift": False, field: value}
    reply = client.put("/api/v1/monitoring/8cd10b05-9cd2-4149-94c0-0f38ce48ccea/policy", json=body, headers=headers)
    assert reply.status_code == 400 and expected in str(reply.json()["error"]["details"]), reply.text
