"""Readiness: the API is ready when MLflow, the Dagster webserver and Ray answer."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from resources.registry import ModelRegistry
    from serving_api.settings import Settings


async def _http_ok(client: httpx.AsyncClient, url: str) -> str | None:
    try:
        response = await client.get(url)
    except httpx.HTTPError as exc:
        return f"unreachable ({type(exc).__name__})"
    return None if response.status_code == 200 else f"answered HTTP {response.status_code}"


async def _mlflow(client: httpx.AsyncClient, settings: "Settings", registry: "ModelRegistry") -> str | None:
    uri = settings.effective_tracking_uri
    if uri.startswith(("http://", "https://")):
        return await _http_ok(client, uri.rstrip("/") + "/health")
    try:
        await asyncio.wait_for(asyncio.to_thread(registry.ping), settings.health_timeout_s)
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        return f"unavailable ({type(exc).__name__})"
    return None


_WORKSPACE_QUERY = """{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename ... on PythonError { message } } } } } }"""


async def _dagster(client: httpx.AsyncClient, url: str) -> str | None:
    """The webserver answers and every code location in its workspace has loaded."""
    try:
        response = await client.post(url.rstrip("/") + "/graphql", json={"query": _WORKSPACE_QUERY})
        workspace = response.json()["data"]["workspaceOrError"]
    except httpx.HTTPError as exc:
        return f"unreachable ({type(exc).__name__})"
    except (ValueError, KeyError, TypeError):
        return "answered without a workspace"
    entries = workspace.get("locationEntries") or []
    if not entries:
        return "no code location loaded"
    for entry in entries:
        loaded = entry.get("locationOrLoadError") or {}
        if entry.get("loadStatus") != "LOADED" or loaded.get("__typename") != "RepositoryLocation":
            message = (loaded.get("message") or entry.get("loadStatus") or "").strip().splitlines()[:1]
            return f"code location '{entry.get('name')}' not loaded: {' '.join(message)[:200]}"
    return None


async def check_dependencies(settings: "Settings", registry: "ModelRegistry") -> dict[str, str]:
    """Each component's state: "ok" or why not."""
    async with httpx.AsyncClient(timeout=settings.health_timeout_s, trust_env=False) as client:
        results = await asyncio.gather(
            _mlflow(client, settings, registry),
            _dagster(client, settings.effective_dagster_url),
            _http_ok(client, settings.effective_ray_dashboard_url.rstrip("/") + "/api/gcs_healthz"),
        )
    return {name: problem or "ok" for name, problem in zip(("mlflow", "dagster", "ray"), results)}
