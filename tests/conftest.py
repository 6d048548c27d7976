"""Shared fixtures: settings on a temporary data directory, a real MLflow (SQLite) registry,
the API app under TestClient, and token helpers."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from serving_api.main import create_app
from config.settings import Settings
from tests.utils.tokens import TEST_SECRET, auth, make_token


def pytest_configure(config) -> None:
    # Nothing in the tests talks to the internet: no MLflow telemetry, no Ray usage stats.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # The tests' own ray.init(num_cpus=2) clusters bind loopback only, like the platform's head
    # (mlservice/child_env.py, RAY_LOOPBACK_ENV); without it Ray listens on all interfaces.
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


def make_settings(data_dir: Path, **overrides) -> Settings:
    values = dict(
        data_dir=data_dir,
        jwt_secret=TEST_SECRET,
        mlflow_tracking_uri=f"sqlite:///{data_dir / 'mlflow' / 'mlflow.db'}",
        dagster_url="http://127.0.0.1:9",  # nothing listens on the discard port: not ready
        ray_dashboard_url="http://127.0.0.1:9",
        health_timeout_s=0.5,
        warm_models=False,
        rate_limit_per_second=1000,
        rate_limit_burst=1000,
        unauthenticated_burst=10_000,  # the route walk sends dozens of unauthenticated requests
    )
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("mlservice-data")
    (path / "mlflow").mkdir()
    return path


@pytest.fixture(scope="session")
def settings(data_dir) -> Settings:
    return make_settings(data_dir)


@pytest.fixture(scope="session")
def client(settings):
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def tenant() -> str:
    """A fresh tenant per test keeps tests independent on the shared registry."""
    return f"t-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def headers(tenant) -> dict[str, str]:
    return auth(make_token(tenant))


@pytest.fixture
def other_headers() -> dict[str, str]:
    return auth(make_token(f"o-{uuid.uuid4().hex[:10]}"))
