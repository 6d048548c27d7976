"""The Ray cluster: connect from a Dagster run (a Ray driver), or ask it over HTTP from the API.

The API never becomes a Ray driver: it asks the dashboard whether the cluster answers
(``gcs_healthz``) and what resources it has (the state API), so a dead cluster costs it one
short HTTP timeout, and it recovers when the cluster is back without a restart.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import dagster as dg
import httpx

from resources.errors import RayUnavailable


class RayCluster(dg.ConfigurableResource):
    address: str
    dashboard_url: str | None = None
    auth_token_path: str | None = None  # RAY_AUTH_TOKEN_PATH of a token-auth cluster
    namespace: str = "mlservice"
    timeout_s: float = 3.0

    # -- for Dagster runs: become a driver ----------------------------------------------------
    def connect(self) -> None:
        import ray

        if self.auth_token_path:
            os.environ.setdefault("RAY_AUTH_MODE", "token")
            os.environ.setdefault("RAY_AUTH_TOKEN_PATH", self.auth_token_path)
        if ray.is_initialized():
            return
        try:
            ray.init(address=self.address, namespace=self.namespace, log_to_driver=False, ignore_reinit_error=True)
        except Exception as exc:  # ConnectionError, auth errors, timeouts
            raise RayUnavailable(f"cannot connect to the Ray cluster at {self.address}: {exc}") from exc

    # -- for the API: ask over HTTP ------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        path = self.auth_token_path or os.environ.get("RAY_AUTH_TOKEN_PATH")
        if path and Path(path).exists():
            return {"Authorization": f"Bearer {Path(path).read_text().strip()}"}
        return {}

    def _get(self, path: str) -> httpx.Response:
        if not self.dashboard_url:
            raise RayUnavailable("no Ray dashboard URL is configured")
        try:
            with httpx.Client(timeout=self.timeout_s, trust_env=False) as client:
                return client.get(self.dashboard_url.rstrip("/") + path, headers=self._headers())
        except httpx.HTTPError as exc:
            raise RayUnavailable(f"the Ray cluster is unreachable ({type(exc).__name__})") from exc

    def ensure_reachable(self, attempts: int = 2, pause_s: float = 0.5) -> None:
        """RayUnavailable unless the dashboard says the GCS answers. A busy head may fail one probe
        (the dashboard answers 503 when its own ping of the GCS times out: seen once in a 30-minute
        soak on 2 cores), so one failure is asked again after ``pause_s`` before a job is refused."""
        for attempt in range(attempts):
            try:
                response = self._get("/api/gcs_healthz")
                if response.status_code == 200:
                    return
                failure = RayUnavailable(f"the Ray cluster is unhealthy (HTTP {response.status_code})")
            except RayUnavailable as exc:
                failure = exc
            if attempt + 1 < attempts:
                time.sleep(pause_s)
        raise failure

    def total_resources(self) -> dict[str, float]:
        """Sum of every alive node's resources (CPU, GPU, memory, ...)."""
        response = self._get("/api/v0/nodes?detail=1&limit=1000")
        if response.status_code != 200:
            raise RayUnavailable(f"the Ray state API answered HTTP {response.status_code}")
        nodes: list[dict[str, Any]] = response.json().get("data", {}).get("result", {}).get("result", [])
        totals: dict[str, float] = {}
        for node in nodes:
            if node.get("state") != "ALIVE":
                continue
            for name, amount in (node.get("resources_total") or {}).items():
                totals[name] = totals.get(name, 0.0) + float(amount)
        return totals

    def serve_applications(self) -> dict[str, dict[str, Any]]:
        """Ray Serve's applications as the dashboard's REST API reports them (``/api/serve/applications/``),
        by name: ``status``, ``message``, ``route_prefix`` and per deployment ``status``, ``message``,
        ``target_num_replicas``, ``replicas`` (their states) and ``deployment_config``. Empty when Serve
        was never started."""
        response = self._get("/api/serve/applications/")
        if response.status_code != 200:
            raise RayUnavailable(f"the Ray dashboard's Serve API answered HTTP {response.status_code}")
        body = response.json() or {}
        return dict(body.get("applications") or {})
