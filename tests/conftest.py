"""Shared fixtures: settings on a temporary data directory, a real MLflow (SQLite) registry,
the API app under TestClient, token headers, an RSA key pair, state tables on SQLite, a tenant's
tiny training file, the Dagster Definitions, one local Ray for the tests that fit on Ray, and one
S3-compatible server (moto's, a process of its own). Plain helpers live in tests/utils/."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mlservice.config.settings import Settings
from serving_api.main import create_app
from tests.utils import xdist_groups
from tests.utils.datasets import write_tiny_training_file
from tests.utils.tokens import TEST_SECRET, auth, make_token


def pytest_configure(config) -> None:
    # Nothing in the tests talks to the internet: no MLflow telemetry, no Ray usage stats.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # The tests' own ray.init(num_cpus=2) clusters bind loopback only, like the platform's head
    # (mlservice/launcher/child_env.py, RAY_LOOPBACK_ENV); without it Ray listens on all interfaces.
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


def pytest_collection_modifyitems(config, items) -> None:
    """The integration tier is tests/integration: the tests there start platform processes and must
    carry the mark (or the fast tier would start them); no test elsewhere may carry it."""
    integration_dir = Path(__file__).parent / "integration"
    misplaced = [item.nodeid for item in items
                 if (integration_dir in Path(item.path).parents) != (item.get_closest_marker("integration") is not None)]
    if misplaced:
        raise pytest.UsageError(f"tests marked integration must be exactly those in {integration_dir}: {misplaced}")
    wrong = xdist_groups.check(items, config.rootpath)
    if wrong:
        raise pytest.UsageError(f"tests in the wrong pytest-xdist group (tests/utils/xdist_groups.py): {wrong}")


def pytest_xdist_make_scheduler(config, log):
    """The workers take whole groups (tests/utils/xdist_groups.py): ``--dist loadgroup`` as the Makefile runs it."""
    if config.getoption("dist") == "loadgroup":
        return xdist_groups.make_scheduler(config, log)
    return None


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


@pytest.fixture(autouse=True)
def closed_breakers():
    """Each test starts with every server breaker closed (resources/infra/breaker.py keeps one per address
    in the process: a test that made a server unreachable must not fail the next one at once)."""
    from resources.infra import breaker

    breaker._BREAKERS.clear()
    yield


@pytest.fixture(params=["sqlite", "postgresql"])
def state(request, tmp_path):
    """The platform's state tables, disposed after: on a fresh SQLite file in the test's tmp_path
    (the embedded default), and on a fresh database of the session's real PostgreSQL (the scale
    profile's)."""
    from resources.infra.state_db import StateStore

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'state.db'}"
    else:
        url = request.getfixturevalue("postgres_server").database("state")
    store = StateStore(database_url=url)
    yield store
    store.dispose()


@pytest.fixture
def train_file(settings, tenant) -> str:
    """The tenant's four-row training file (``data/train.parquet``) for tests that submit jobs."""
    return write_tiny_training_file(settings, tenant)


@pytest.fixture
def definitions(monkeypatch, tmp_path):
    """The Dagster code location's one Definitions (pipelines/definitions.py) with its ``local``
    resources on a data directory in tmp_path, checked loadable."""
    import dagster as dg

    from pipelines.definitions import build_definitions

    monkeypatch.setenv("MLSERVICE_DATA_DIR", str(tmp_path))
    defs = build_definitions()
    dg.Definitions.validate_loadable(defs)
    return defs


@pytest.fixture(scope="session")
def rsa_pems() -> tuple[str, str]:
    """(private, public) PEM of a fresh RSA key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private.decode(), public.decode()


@pytest.fixture(scope="session")
def local_ray():
    """One local Ray cluster (2 CPUs, loopback, no dashboard) for every test that fits or tunes on
    Ray in this process: started by the first test that asks for it, shut down when the session
    ends. Tests that do not ask (the API tests among them) never start Ray. Not a platform
    process: the fast tier keeps these tests; assets reach it through ``RayCluster(address="auto")``,
    whose connect() reuses an initialized Ray."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level="warning", log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """One S3-compatible server for the session (``tests.utils.s3``: moto's server process on a free
    loopback port, stopped by its process group at the end), started by the first test that asks.
    Sets the AWS variables (any key does) for this process and its children while it runs; make
    buckets with ``s3_server.bucket()`` (unique names), files with ``put_parquet``, and a policy
    that grants them with ``s3_server.policy(data_dir, tenant_buckets=...)``."""
    from tests.utils.s3 import moto_server

    with moto_server(log_path=tmp_path_factory.mktemp("s3") / "moto.log") as server, pytest.MonkeyPatch.context() as patch:
        for name, value in server.env.items():
            patch.setenv(name, value)
        patch.delenv("AWS_SESSION_TOKEN", raising=False)
        patch.delenv("AWS_REGION", raising=False)
        yield server


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory):
    """One real PostgreSQL for the session (``tests.utils.postgres``), started by the first test that
    asks; ``postgres_server.database()`` is the URL of a new database of one's own."""
    from tests.utils.postgres import postgres_server

    with postgres_server(tmp_path_factory.mktemp("postgres")) as server:
        yield server


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """One real Redis for the session (``tests.utils.redis``); ``redis_server.url()`` and ``.client()``."""
    from tests.utils.redis import redis_server

    with redis_server(tmp_path_factory.mktemp("redis") / "server") as server:
        yield server
