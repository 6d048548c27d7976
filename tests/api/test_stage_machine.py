"""Stage transitions through the API: every allowed and refused edge, the single production
version, the recorded history, and concurrent promotions."""

from __future__ import annotations

import itertools
import threading

import pytest

from tests.utils.api import error_envelope, register_model
from tests.utils.mlflow_models import log_sklearn_model

STAGES = ["development", "staging", "production", "archived"]
ALLOWED = {
    ("development", "staging"), ("staging", "production"), ("production", "archived"),
    ("staging", "development"), ("archived", "staging"),
    ("development", "archived"), ("staging", "archived"),
}
# How to bring a fresh version (which starts in development) to each stage.
PATH_TO = {
    "development": [],
    "staging": ["staging"],
    "production": ["staging", "production"],
    "archived": ["archived"],
}


@pytest.fixture(scope="module")
def run_id(settings):
    return log_sklearn_model(settings, "stage-tests")


@pytest.fixture(scope="module")
def stage_headers():
    from tests.utils.tokens import auth, make_token

    return auth(make_token("stage-tests"))


def _new_model(client, headers, run_id: str, versions: int = 1) -> str:
    import uuid

    model_id = register_model(client, headers, run_id, f"m-{uuid.uuid4().hex[:8]}")
    for _ in range(versions - 1):
        client.post(f"/api/v1/models/{model_id}/versions", json={"source": {"run_id": run_id}}, headers=headers)
    return model_id


def _move(client, headers, model_id: str, version: str, target: str):
    return client.put(
        f"/api/v1/models/{model_id}/stage", json={"version": version, "target_stage": target}, headers=headers
    )


def _stages(client, headers, model_id: str) -> dict[str, str]:
    data = client.get(f"/api/v1/models/{model_id}/versions", headers=headers).json()["data"]
    return {v["version"]: v["stage"] for v in data}


@pytest.mark.parametrize("current,target", list(itertools.product(STAGES, STAGES)))
def test_every_edge_of_the_stage_machine(client, stage_headers, run_id, current, target):
    model_id = _new_model(client, stage_headers, run_id)
    for step in PATH_TO[current]:
        assert _move(client, stage_headers, model_id, "1.0.0", step).status_code == 200
    response = _move(client, stage_headers, model_id, "1.0.0", target)
    if (current, target) in ALLOWED:
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["from_stage"], body["to_stage"]) == (current, target)
        assert _stages(client, stage_headers, model_id)["1.0.0"] == target
    else:
        error_envelope(response, 409, "STAGE_CONFLICT")
        assert _stages(client, stage_headers, model_id)["1.0.0"] == current  # nothing changed


def test_unknown_version_is_404_and_bad_stage_is_400(client, stage_headers, run_id):
    model_id = _new_model(client, stage_headers, run_id)
    missing = _move(client, stage_headers, model_id, "9.9.9", "staging")
    error_envelope(missing, 404, "VERSION_NOT_FOUND")
    assert _move(client, stage_headers, model_id, "1.0.0", "live").status_code == 400
    assert _move(client, stage_headers, model_id, "latest", "staging").status_code == 400


def test_promotion_archives_the_previous_production_version(client, stage_headers, run_id):
    model_id = _new_model(client, stage_headers, run_id, versions=2)
    for version in ("1.0.0", "1.1.0"):
        _move(client, stage_headers, model_id, version, "staging")
    assert _move(client, stage_headers, model_id, "1.0.0", "production").json()["archived_versions"] == []
    second = _move(client, stage_headers, model_id, "1.1.0", "production").json()
    assert second["archived_versions"] == ["1.0.0"]
    assert _stages(client, stage_headers, model_id) == {"1.1.0": "production", "1.0.0": "archived"}
    model = client.get(f"/api/v1/models/{model_id}", headers=stage_headers).json()
    assert (model["current_version"], model["stage"]) == ("1.1.0", "production")
    history = {
        v["version"]: [(h["from_stage"], h["to_stage"]) for h in v["history"]]
        for v in client.get(f"/api/v1/models/{model_id}/versions", headers=stage_headers).json()["data"]
    }
    assert history["1.0.0"] == [(None, "development"), ("development", "staging"), ("staging", "production"), ("production", "archived")]
    assert history["1.1.0"] == [(None, "development"), ("development", "staging"), ("staging", "production")]
    # Filters see the summary.
    listed = client.get("/api/v1/models", params={"stage": "production"}, headers=stage_headers).json()["data"]
    assert model_id in {m["model_id"] for m in listed}


def test_archiving_production_leaves_no_production_version(client, stage_headers, run_id):
    model_id = _new_model(client, stage_headers, run_id)
    for step in ("staging", "production", "archived"):
        assert _move(client, stage_headers, model_id, "1.0.0", step).status_code == 200
    model = client.get(f"/api/v1/models/{model_id}", headers=stage_headers).json()
    assert model["stage"] == "archived"
    assert client.app.state.registry.client.get_registered_model(f"stage-tests.{model['name']}").aliases == {}


def test_concurrent_promotions_never_leave_two_production_versions(client, stage_headers, run_id):
    """Promote two staged versions at once, many times: each round ends with exactly one
    production version, and every request either won (200) or was refused with 409."""
    for _ in range(4):
        model_id = _new_model(client, stage_headers, run_id, versions=2)
        for version in ("1.0.0", "1.1.0"):
            _move(client, stage_headers, model_id, version, "staging")
        barrier = threading.Barrier(2)
        results: dict[str, int] = {}

        def promote(version: str, barrier=barrier, results=results, model_id=model_id) -> None:
            barrier.wait()
            results[version] = _move(client, stage_headers, model_id, version, "production").status_code

        threads = [threading.Thread(target=promote, args=(v,)) for v in ("1.0.0", "1.1.0")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert set(results.values()) <= {200, 409}
        assert 200 in results.values()
        stages = _stages(client, stage_headers, model_id)
        assert list(stages.values()).count("production") == 1


def test_a_held_model_lease_refuses_a_second_writer(client, stage_headers, run_id):
    """While another writer holds the model's lease, a transition answers 409 at once."""
    model_id = _new_model(client, stage_headers, run_id)
    store = client.app.state.state_store
    assert store.try_lock(f"model:{model_id}", "other-writer")
    try:
        response = _move(client, stage_headers, model_id, "1.0.0", "staging")
        error_envelope(response, 409, "STAGE_CONFLICT")
        assert _stages(client, stage_headers, model_id)["1.0.0"] == "development"
    finally:
        store.unlock(f"model:{model_id}", "other-writer")
    assert _move(client, stage_headers, model_id, "1.0.0", "staging").status_code == 200


def test_an_expired_lease_does_not_block_forever(client, stage_headers, run_id):
    model_id = _new_model(client, stage_headers, run_id)
    store = client.app.state.state_store
    assert store.try_lock(f"model:{model_id}", "crashed-writer", lease_s=-1)  # already expired
    assert _move(client, stage_headers, model_id, "1.0.0", "staging").status_code == 200


def test_development_to_production_in_one_request_via_staging(client, stage_headers, run_id):
    """The reference's example moves a fresh version straight to production: refused with the allowed
    next stages and the way through, and done in one request with ``via``, both moves recorded."""
    model_id = _new_model(client, stage_headers, run_id, versions=2)
    refused = error_envelope(_move(client, stage_headers, model_id, "1.0.0", "production"), 409, "STAGE_CONFLICT")
    assert "allowed next stages are archived, staging" in refused["message"] and '"via": "staging"' in refused["message"]
    assert refused["details"]["allowed_targets"] == ["archived", "staging"] and refused["details"]["via"] == ["staging"]
    body = {"version": "1.0.0", "target_stage": "production", "via": "staging"}
    moved = client.put(f"/api/v1/models/{model_id}/stage", json=body, headers=stage_headers)
    assert moved.status_code == 200, moved.text
    assert (moved.json()["from_stage"], moved.json()["via"], moved.json()["to_stage"]) == ("development", "staging", "production")
    assert _stages(client, stage_headers, model_id)["1.0.0"] == "production"
    data = client.get(f"/api/v1/models/{model_id}/versions", headers=stage_headers).json()["data"]
    history = next(v["history"] for v in data if v["version"] == "1.0.0")
    assert [(h["from_stage"], h["to_stage"]) for h in history][-2:] == [("development", "staging"), ("staging", "production")]
    # the second version, through staging too: the first is archived by it
    later = next(v for v in _stages(client, stage_headers, model_id) if v != "1.0.0")
    body = {"version": later, "target_stage": "production", "via": "staging"}
    second = client.put(f"/api/v1/models/{model_id}/stage", json=body, headers=stage_headers)
    assert second.status_code == 200 and second.json()["archived_versions"] == ["1.0.0"], second.text
    # a path whose second move is not allowed changes nothing
    bad = {"version": "1.0.0", "target_stage": "production", "via": "development"}  # archived -> development: no edge
    error_envelope(client.put(f"/api/v1/models/{model_id}/stage", json=bad, headers=stage_headers), 409, "STAGE_CONFLICT")
    assert _stages(client, stage_headers, model_id) == {"1.0.0": "archived", later: "production"}
    # via the stage it is in already: one move
    body = {"version": "1.0.0", "target_stage": "staging", "via": "archived"}
    again = client.put(f"/api/v1/models/{model_id}/stage", json=body, headers=stage_headers)
    assert again.status_code == 200 and again.json()["via"] is None and again.json()["from_stage"] == "archived", again.text
