"""The integration tier's platform: one ``mlservice up`` (Ray head, MLflow server, Dagster webserver
and daemon, embedded S3, demo seed, API) on free loopback ports and a temporary data directory,
started by the first test that asks and shared by the modules that use ``platform``/``up`` (a
platform costs a minute to start on 2 cores). test_platform_up.py's last test stops it and starts
it again on the same data directory, so it runs last (the modules run in name order).

The tier runs on two pytest-xdist workers (``--dist loadgroup``, Makefile; the groups in
tests/utils/xdist_groups.py): every module that uses the shared platform in one group, so one
worker runs them all, in order, on one platform; the modules that start processes of their own
(the scale profile's platform, API processes they kill, ``own_platform``) run beside them on the other."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from tests.utils.platform import Platform, assert_groups_gone, cleanup, running_platform, start, stop

DEMO_TENANT, DEMO_MODEL = "acme-corp", "customer_churn_predictor"
SLOW_TENANT = "slow-lab"
# A JWT-named variable in the launcher's environment: the API may see it, no other part may.
# (Settings ignore it; the real MLSERVICE_JWT_SECRET would stop the dev key from being generated.)
JWT_CANARY = ("MLSERVICE_JWT_SECRET_CANARY", "canary-" + "c" * 40)


# sensors that look every 5 s, not every 60 (monitoring) or 30 (deployments): the retraining loop closes and
# canaries are judged within a test. Only where a module waits on them: each look is a Dagster sensor
# evaluation and a registry query (the code servers took a fifth of a core across the tier's platforms).
FAST_MONITORING = {"MLSERVICE_MONITORING_SENSOR_INTERVAL_S": "5"}
FAST_RECONCILER = {"MLSERVICE_DEPLOYMENT_SENSOR_INTERVAL_S": "5"}


def platform_env(sensors: dict[str, str] | None = None) -> dict[str, str]:
    """What every platform of the tier is started with, beside its free ports; ``sensors``: which
    sensors look every 5 s (the shared platform's tests wait on both)."""
    return {**dict([JWT_CANARY]), **(sensors if sensors is not None else {**FAST_MONITORING, **FAST_RECONCILER}),
           # one tenant's runs may take 15 s (test_max_runtime.py); every other tenant keeps the default
           "MLSERVICE_MAX_RUN_MINUTES_OVERRIDES": json.dumps({SLOW_TENANT: 0.25}),
           # the OpenAPI run (test_openapi_live.py) sends thousands of requests without a token from one
           # address (its missing-auth checks): the per-address limit before auth would answer them 429, not
           # the 401 they test (the limiter itself is tested in the fast tier: tests/api/test_unauthenticated.py)
           "MLSERVICE_UNAUTHENTICATED_RATE_PER_SECOND": "1000", "MLSERVICE_UNAUTHENTICATED_BURST": "5000"}


def stop_as_ctrl_c(platform: Platform) -> None:
    """As Ctrl-C of `make up` would (SIGTERM to its group): everything stops within 20 s, nothing is left."""
    began = time.monotonic()
    stop(platform)
    took = time.monotonic() - began
    assert platform.proc.returncode == 0 and took < 20, (platform.proc.returncode, took, platform.tail())
    assert_groups_gone(platform)


@contextmanager
def own_platform(tmp_path_factory, name: str, args: tuple[str, ...] = (), sensors: dict[str, str] | None = None) -> Iterator[Platform]:
    """A platform of one module's own (a module-scoped ``up``): for a module that kills parts of a
    platform or holds its CPUs for minutes. Its tests carry no ``platform`` fixture, so they run in
    the tier's other group, beside the shared platform's tests; it stops as the shared one does.
    ``sensors``: the fast ones it waits on (``platform_env``), none by default."""
    data_dir = tmp_path_factory.mktemp(f"{name}-data").resolve()
    with running_platform(data_dir, data_dir.parent / f"{name}.log", args=args, extra_env=platform_env(sensors or {})) as started:
        yield started
        stop_as_ctrl_c(started)


@pytest.fixture(scope="session")
def platform(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("platform-data").resolve()
    data_dir.chmod(0o755)  # an existing, open data dir: the launcher narrows it
    state = {"current": None}
    try:
        state["current"] = start(data_dir, data_dir.parent / "up-1.log", extra_env=platform_env())
        yield state  # a holder: the restart test swaps in the second instance
    finally:
        try:
            if state["current"] is not None:
                stop_as_ctrl_c(state["current"])
        finally:
            cleanup(data_dir)  # both instances share the data directory


@pytest.fixture
def up(platform) -> Platform:
    return platform["current"]


@pytest.fixture
def http():
    with httpx.Client(trust_env=False, timeout=30) as client:  # loopback only: never a proxy
        yield client
