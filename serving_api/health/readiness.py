"""Readiness: the API is ready when MLflow, the Dagster webserver and Ray answer.

``/health/ready`` needs no token, so it answers from a result at most ``settings.health_cache_s``
old (``ReadinessCache``): a flood of calls costs the dependencies one probe per interval.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from mlservice.config.settings import Settings
    from resources.models.registry import ModelRegistry


async def _http_ok(client: httpx.AsyncClient, url: str) -> str | None:
    try:
        response = await client.get(url)
    except httpx.HTTPError as exc:
        return f"unreachable ({type(exc).__name__})"
    return None if response.status_code == 200 else f"answered HTTP {response.status_code}"


async def _mlflow(client: httpx.AsyncClient, settings: Settings, registry: ModelRegistry) -> str | None:
    uri = settings.effective_tracking_uri
    if uri.startswith(("http://", "https://")):
        return await _http_ok(client, uri.rstrip("/") + "/health")
    try:
        await asyncio.wait_for(asyncio.to_thread(registry.ping), settings.health_timeout_s)
    except Exception as exc:
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


async def check_dependencies(settings: Settings, registry: ModelRegistry) -> dict[str, str]:
    """Each component's state: "ok" or why not."""
    async with httpx.AsyncClient(timeout=settings.health_timeout_s, trust_env=False) as client:
        results = await asyncio.gather(
            _mlflow(client, settings, registry),
            _dagster(client, settings.effective_dagster_url),
            _http_ok(client, settings.effective_ray_dashboard_url.rstrip("/") + "/api/gcs_healthz"),
        )
    return {name: problem or "ok" for name, problem in zip(("mlflow", "dagster", "ray"), results, strict=True)}


Probe = Callable[["Settings", "ModelRegistry"], Awaitable[dict[str, str]]]


class ReadinessCache:
    """The last probe's result, reused while younger than ``settings.health_cache_s``; callers
    that arrive while a probe runs wait for it instead of starting their own."""

    def __init__(self, settings: Settings, registry: ModelRegistry, probe: Probe = check_dependencies,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings, self.registry, self.probe, self.clock = settings, registry, probe, clock
        self._result: dict[str, str] | None = None
        self._at = 0.0
        self._lock = asyncio.Lock()

    def _fresh(self) -> dict[str, str] | None:
        if self._result is not None and self.clock() - self._at < self.settings.health_cache_s:
            return self._result
        return None

    async def components(self) -> dict[str, str]:
        fresh = self._fresh()
        if fresh is not None:
            return fresh
        async with self._lock:
            fresh = self._fresh()
            if fresh is None:
                fresh = await self.probe(self.settings, self.registry)
                self._result, self._at = fresh, self.clock()
            return fresh


def app_readiness(state) -> ReadinessCache:
    """The app's one readiness cache (``app.state.readiness``, made on first use: the event loop
    is one thread). Every unauthenticated readiness route answers through it."""
    cache = getattr(state, "readiness", None)
    if cache is None:
        cache = state.readiness = ReadinessCache(state.settings, state.registry)
    return cache
