"""Answers of the API under test: the error envelope every refusal carries, and registering a
model from a logged run."""

from __future__ import annotations

from typing import Any


def error_envelope(response, status: int, code: str) -> dict[str, Any]:
    """Check a refusal against the envelope (``{"error": {"code", "message", "details",
    "request_id"}}``, the request id equal to the ``x-request-id`` header) and its status and code;
    returns the error object. Takes TestClient and httpx responses alike."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details", "request_id"}, error
    assert error["code"] == code, error
    assert error["request_id"] == response.headers["x-request-id"]
    return error


def register_model(client, headers: dict[str, str], run_id: str, name: str, **fields: Any) -> str:
    """POST /api/v1/models with the run as its first version's source; asserts 201, returns the id."""
    response = client.post("/api/v1/models", json={"name": name, **fields, "source": {"run_id": run_id}}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()["model_id"]


def move_stages(client, headers: dict[str, str], model_id: str, version: str, *stages: str) -> None:
    """PUT the version through ``stages`` in order (e.g. "staging", "production"); asserts each 200."""
    for stage in stages:
        moved = client.put(f"/api/v1/models/{model_id}/stage", json={"version": version, "target_stage": stage}, headers=headers)
        assert moved.status_code == 200, moved.text
