"""Tenancy: another tenant's model answers exactly like a random id on every models route,
and never appears in lists."""

from __future__ import annotations

import uuid

from tests.utils.mlflow_models import log_sklearn_model


def _strip(body: dict) -> dict:
    """The error without the ids that differ by construction."""
    error = dict(body["error"])
    error.pop("request_id")
    error.pop("message")
    error.pop("details")
    return error


def test_every_models_route_hides_other_tenants(client, settings, tenant, headers, other_headers):
    run_id = log_sklearn_model(settings, tenant)
    owned = client.post("/api/v1/models", json={"name": "private", "source": {"run_id": run_id}}, headers=headers).json()
    model_id, random_id = owned["model_id"], str(uuid.uuid4())
    routes = [
        ("GET", "/api/v1/models/{id}", None),
        ("GET", "/api/v1/models/{id}/versions", None),
        ("POST", "/api/v1/models/{id}/versions", {"source": {"run_id": run_id}}),
        ("PUT", "/api/v1/models/{id}/stage", {"version": "1.0.0", "target_stage": "staging"}),
    ]
    for method, path, body in routes:
        foreign = client.request(method, path.format(id=model_id), json=body, headers=other_headers)
        unknown = client.request(method, path.format(id=random_id), json=body, headers=other_headers)
        assert foreign.status_code == unknown.status_code == 404, (method, path, foreign.text)
        assert _strip(foreign.json()) == _strip(unknown.json()) == {"code": "MODEL_NOT_FOUND"}
    # Lists never show it, whatever the filter.
    for params in ({}, {"name_prefix": "private"}, {"stage": "development"}, {"framework": "sklearn"}):
        listed = client.get("/api/v1/models", params=params, headers=other_headers).json()
        assert model_id not in {m["model_id"] for m in listed["data"]}
    # And the owner still sees it untouched.
    versions = client.get(f"/api/v1/models/{model_id}/versions", headers=headers).json()
    assert [(v["version"], v["stage"]) for v in versions["data"]] == [("1.0.0", "development")]


def test_same_model_name_in_two_tenants_stays_separate(client, headers, other_headers):
    mine = client.post("/api/v1/models", json={"name": "shared-name", "tags": {"owner": "me"}}, headers=headers).json()
    theirs = client.post("/api/v1/models", json={"name": "shared-name", "tags": {"owner": "them"}}, headers=other_headers).json()
    assert mine["model_id"] != theirs["model_id"]
    assert client.get(f"/api/v1/models/{mine['model_id']}", headers=headers).json()["tags"] == {"owner": "me"}
    assert client.get(f"/api/v1/models/{theirs['model_id']}", headers=other_headers).json()["tags"] == {"owner": "them"}
