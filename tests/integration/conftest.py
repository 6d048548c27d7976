"""The integration tier's platform: one ``mlservice up`` (Ray head, MLflow server, Dagster webserver
and daemon, embedded S3, demo seed, API) on free loopback ports and a temporary data directory,
started by the first test that asks and shared by the modules that use ``platform``/``up`` (a
platform costs a minute to start on 2 cores). test_platform_up.py's last test stops it and starts
it again on the same data directory, so it runs last (the modules run in name order)."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.utils.platform import Platform, assert_groups_gone, cleanup, start, stop

DEMO_TENANT, DEMO_MODEL = "acme-corp", "customer_churn_predictor"
SLOW_TENANT = "slow-lab"
# A JWT-named variable in the launcher's environment: the API may see it, no other part may.
# (Settings ignore it; the real MLSERVICE_JWT_SECRET would stop the dev key from being generated.)
JWT_CANARY = ("MLSERVICE_JWT_SECRET_CANARY", "canary-" + "c" * 40)


@pytest.fixture(scope="session")
def platform(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("platform-data").resolve()
    data_dir.chmod(0o755)  # an existing, open data dir: the launcher narrows it
    state = {"current": None}
    try:
        # sensors look every 5 s (60 s by default) so the retraining loop closes within the test
        # (and the deployment reconciler every 5 s, so canaries are judged within the test)
        env = {**dict([JWT_CANARY]), "MLSERVICE_MONITORING_SENSOR_INTERVAL_S": "5", "MLSERVICE_DEPLOYMENT_SENSOR_INTERVAL_S": "5",
               # one tenant's runs may take 15 s (test_max_runtime.py); every other tenant keeps the default
               "MLSERVICE_MAX_RUN_MINUTES_OVERRIDES": json.dumps({SLOW_TENANT: 0.25}),
               # the OpenAPI run (test_openapi_live.py) sends thousands of requests without a token from one
               # address (its missing-auth checks): the per-address limit before auth would answer them 429, not
               # the 401 they test (the limiter itself is tested in the fast tier: tests/api/test_unauthenticated.py)
               "MLSERVICE_UNAUTHENTICATED_RATE_PER_SECOND": "1000", "MLSERVICE_UNAUTHENTICATED_BURST": "5000"}
        state["current"] = start(data_dir, data_dir.parent / "up-1.log", extra_env=env)
        yield state  # a holder: the restart test swaps in the second instance
    finally:
        last = state["current"]
        try:
            if last is not None:  # as Ctrl-C of `make up` would (SIGTERM to its group): everything stops within 20 s
                began = time.monotonic()
                stop(last)
                took = time.monotonic() - began
                assert last.proc.returncode == 0 and took < 20, (last.proc.returncode, took, last.tail())
                assert_groups_gone(last)
        finally:
            cleanup(data_dir)  # both instances share the data directory


@pytest.fixture
def up(platform) -> Platform:
    return platform["current"]


@pytest.fixture
def http():
    with httpx.Client(trust_env=False, timeout=30) as client:  # loopback only: never a proxy
        yield client
