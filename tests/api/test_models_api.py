"""The models API on the real MLflow registry (SQLite store): create, list, get, versions."""

from __future__ import annotations

import pytest

from tests.utils.api import error_envelope
from tests.utils.mlflow_models import log_sklearn_model
from tests.utils.tokens import auth, make_token


def test_create_returns_the_seed_shape(client, tenant, headers):
    body = {
        "name": "customer_churn_predictor", "description": "churn", "model_type": "classification",
        "framework": "sklearn", "tags": {"team": "customer-analytics", "use_case": "churn"},
    }
    response = client.post("/api/v1/models", json=body, headers=headers)
    assert response.status_code == 201, response.text
    model = response.json()
    assert model["name"] == "customer_churn_predictor"
    assert model["tenant_id"] == tenant
    assert model["current_version"] == "1.0.0" and model["latest_version"] is None
    assert model["stage"] == "development"
    assert model["tags"] == {"team": "customer-analytics", "use_case": "churn"}
    assert model["created_at"].endswith("Z")
    fetched = client.get(f"/api/v1/models/{model['model_id']}", headers=headers).json()
    assert fetched["model_id"] == model["model_id"] and fetched["description"] == "churn"


def test_duplicate_name_in_tenant_is_409_but_other_tenant_may_reuse_it(client, headers, other_headers):
    assert client.post("/api/v1/models", json={"name": "dup"}, headers=headers).status_code == 201
    again = client.post("/api/v1/models", json={"name": "dup"}, headers=headers)
    error_envelope(again, 409, "MODEL_ALREADY_EXISTS")
    assert client.post("/api/v1/models", json={"name": "dup"}, headers=other_headers).status_code == 201


def test_list_filters_and_cursor_pagination(client, headers):
    for name, framework, model_type in [
        ("alpha", "sklearn", "classification"), ("alpine", "pytorch", "regression"),
        ("beta", "sklearn", "regression"), ("a_b", "sklearn", "classification"), ("axb", "sklearn", "classification"),
    ]:
        body = {"name": name, "framework": framework, "model_type": model_type}
        assert client.post("/api/v1/models", json=body, headers=headers).status_code == 201

    def names(**params) -> list[str]:
        response = client.get("/api/v1/models", params=params, headers=headers)
        assert response.status_code == 200, response.text
        return [m["name"] for m in response.json()["data"]]

    assert names() == ["a_b", "alpha", "alpine", "axb", "beta"]
    assert names(framework="pytorch") == ["alpine"]
    assert names(model_type="regression") == ["alpine", "beta"]
    assert names(name_prefix="alp") == ["alpha", "alpine"]
    assert names(name_prefix="a_") == ["a_b"]  # '_' is literal, not a LIKE wildcard
    assert names(stage="production") == []
    assert names(stage="development") == ["a_b", "alpha", "alpine", "axb", "beta"]

    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/v1/models", params=params, headers=headers).json()
        assert page["count"] == len(page["data"]) <= 2
        seen += [m["name"] for m in page["data"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == ["a_b", "alpha", "alpine", "axb", "beta"]


@pytest.mark.parametrize(
    "params",
    [{"stage": "live"}, {"framework": "cobol"}, {"model_type": "x"}, {"limit": 0}, {"limit": 101},
     {"limit": "ten"}, {"name_prefix": "bad prefix"}, {"cursor": "not-a-cursor"},
     {"cursor": "\u00e4\u00d7\x01\x7f=="}, {"cursor": "MTIz"}, {"cursor": "eyJvZmZzZXQiOiAwfQ=="}],  # bytes, "123", offset 0
)
def test_invalid_list_parameters_are_400(client, headers, params):
    response = client.get("/api/v1/models", params=params, headers=headers)
    error_envelope(response, 400, "INVALID_REQUEST")


def test_torch_is_the_same_framework_as_pytorch(client, headers):
    """Users of the package name it ``torch``: registered, listed and filtered as ``pytorch``."""
    created = client.post("/api/v1/models", json={"name": "torch_named", "framework": "torch"}, headers=headers)
    assert created.status_code == 201, created.text
    assert created.json()["framework"] == "pytorch"
    for alias in ("torch", "pytorch"):
        listed = client.get("/api/v1/models", params={"framework": alias, "name_prefix": "torch_named"}, headers=headers).json()
        assert [m["name"] for m in listed["data"]] == ["torch_named"] and listed["data"][0]["framework"] == "pytorch"
    error_envelope(client.post("/api/v1/models", json={"name": "tf_named", "framework": "tensorflow"}, headers=headers),
                   400, "INVALID_REQUEST")


def test_a_malformed_cursor_never_reaches_mlflow(client, headers, monkeypatch):
    """Against an MLflow server, a token it cannot parse comes back as a 500 that its client retries
    and reports like an unreachable server: the API refuses it first (400), so 503 keeps meaning down."""
    registry, asked = client.app.state.registry, []
    monkeypatch.setattr(registry.client, "search_registered_models", lambda *args, **kwargs: asked.append(kwargs))
    error = error_envelope(client.get("/api/v1/models", params={"cursor": "%%garbage%%"}, headers=headers), 400, "INVALID_REQUEST")
    assert "cursor" in error["message"] and asked == []


def test_unknown_model_is_404(client, headers):
    for model_id in ("00000000-0000-0000-0000-000000000000", "not-a-uuid", "' or 1=1 --"):
        response = client.get(f"/api/v1/models/{model_id}", headers=headers)
        error_envelope(response, 404, "MODEL_NOT_FOUND")


def test_register_existing_mlflow_model_as_first_version(client, settings, tenant, headers):
    run_id = log_sklearn_model(settings, tenant)
    response = client.post("/api/v1/models", json={"name": "brought", "source": {"run_id": run_id}}, headers=headers)
    assert response.status_code == 201, response.text
    model = response.json()
    assert model["current_version"] == "1.0.0" and model["latest_version"] == "1.0.0"
    versions = client.get(f"/api/v1/models/{model['model_id']}/versions", headers=headers).json()
    assert versions["count"] == 1
    first = versions["data"][0]
    assert first["version"] == "1.0.0" and first["stage"] == "development" and first["run_id"] == run_id
    assert first["history"][0]["to_stage"] == "development"
    assert first["history"][0]["changed_by"] == f"user@{tenant}"


def test_version_numbering(client, settings, tenant, headers):
    run_id = log_sklearn_model(settings, tenant)
    model_id = client.post("/api/v1/models", json={"name": "numbered"}, headers=headers).json()["model_id"]
    url = f"/api/v1/models/{model_id}/versions"

    def register(**extra) -> dict:
        response = client.post(url, json={"source": {"model_uri": f"runs:/{run_id}/model"}, **extra}, headers=headers)
        return response

    assert register().json()["version"] == "1.0.0"
    assert register().json()["version"] == "1.1.0"
    assert register(bump="patch").json()["version"] == "1.1.1"
    assert register(bump="major").json()["version"] == "2.0.0"
    assert register(version="2.0.0-rc.1").json()["version"] == "2.0.0-rc.1"
    clash = register(version="1.1.0")
    error_envelope(clash, 409, "VERSION_ALREADY_EXISTS")
    assert register(version="1.2").status_code == 400
    listed = [v["version"] for v in client.get(url, headers=headers).json()["data"]]
    assert listed == ["2.0.0", "2.0.0-rc.1", "1.1.1", "1.1.0", "1.0.0"]
    model = client.get(f"/api/v1/models/{model_id}", headers=headers).json()
    assert model["latest_version"] == "2.0.0" and model["current_version"] == "2.0.0"


def test_sources_must_belong_to_the_tenant(client, settings, tenant, headers):
    """Another tenant's run, an untagged run and a made-up run all answer the same 400."""
    foreign_run = log_sklearn_model(settings, "someone-else")
    model_id = client.post("/api/v1/models", json={"name": "strict"}, headers=headers).json()["model_id"]
    url = f"/api/v1/models/{model_id}/versions"
    answers = []
    for source in ({"run_id": foreign_run}, {"run_id": "0" * 32}, {"model_uri": "s3://bucket/model"}):
        response = client.post(url, json={"source": source}, headers=headers)
        assert response.status_code == 400, response.text
        answers.append(response.json()["error"]["code"])
    assert set(answers) == {"INVALID_REQUEST"}
    refused = client.post("/api/v1/models", json={"name": "stolen", "source": {"run_id": foreign_run}}, headers=headers)
    assert refused.status_code == 400
    # Nothing was left behind by the refused create.
    assert client.get("/api/v1/models", params={"name_prefix": "stolen"}, headers=headers).json()["count"] == 0
    assert client.get(url, headers=headers).json()["count"] == 0


def test_source_needs_exactly_one_of_run_id_and_model_uri(client, headers):
    for source in ({}, {"run_id": "a" * 32, "model_uri": "runs:/x/model"}):
        response = client.post("/api/v1/models", json={"name": "src", "source": source}, headers=headers)
        assert response.status_code == 400


def test_scopes_per_route(client, tenant):
    read_only = auth(make_token(tenant, scopes=("models:read",)))
    writer = auth(make_token(tenant, scopes=("models:write",)))
    model_id = client.post("/api/v1/models", json={"name": "scoped"}, headers=writer).json()["model_id"]
    assert client.get(f"/api/v1/models/{model_id}", headers=writer).status_code == 403
    assert client.get(f"/api/v1/models/{model_id}", headers=read_only).status_code == 200
    stage = {"version": "1.0.0", "target_stage": "staging"}
    assert client.put(f"/api/v1/models/{model_id}/stage", json=stage, headers=read_only).status_code == 403
