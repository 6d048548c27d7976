"""Schema-driven fuzzing of the OpenAPI document: no input gives a 5xx.

Schemathesis generates requests for every operation (valid and invalid bodies, paths and
queries) and sends them with a valid token, so the handlers behind auth are exercised too.
"""

from __future__ import annotations

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error

from serving_api.main import create_app
from tests.conftest import make_settings
from tests.utils.tokens import auth, make_token

_app_holder: dict = {}


def _app():
    if "app" not in _app_holder:
        import tempfile
        from pathlib import Path

        data_dir = Path(tempfile.mkdtemp(prefix="mlservice-fuzz-"))
        _app_holder["app"] = create_app(make_settings(data_dir))
    return _app_holder["app"]


# Readiness answers 503 by design here (no Dagster or Ray in this test): it is not fuzzed.
schema = schemathesis.openapi.from_asgi("/openapi.json", _app()).exclude(path="/health/ready")


@pytest.fixture(scope="module", autouse=True)
def _lifespan():
    with TestClient(_app()):  # runs the lifespan: verifier, tables, audit writer
        yield


@schema.parametrize()
@hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_gives_a_server_error(case):
    case.call_and_validate(headers=auth(make_token("fuzz-tenant")), checks=[not_a_server_error])
