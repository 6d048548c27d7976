"""Schema-driven fuzzing of the OpenAPI document: no input gives a 5xx, and every answer is
one the document describes (status, content type, headers, body schema), schema-violating
requests (unknown query parameters, a parameter given twice, missing auth) are refused.

Schemathesis generates requests for every operation (valid and invalid bodies, paths and
queries) and sends them with a valid token, so the handlers behind auth are exercised too.
Its ``positive_data_acceptance`` check is left out on purpose: a schema-valid request may still
break a rule beyond the schema (a run id that does not exist, a path outside the tenant's area),
which this API answers 400 or 404 as documented.
"""

from __future__ import annotations

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis import checks

from serving_api.main import create_app
from tests.conftest import make_settings
from tests.utils.tokens import auth, make_token

_app_holder: dict = {}


def _app():
    if "app" not in _app_holder:
        import atexit
        import shutil
        import tempfile
        from pathlib import Path

        # made when the module is collected (schemathesis reads the schema then), even in a run
        # that deselects it: removed when pytest's process ends
        data_dir = Path(tempfile.mkdtemp(prefix="mlservice-fuzz-"))
        atexit.register(shutil.rmtree, data_dir, True)
        _app_holder["app"] = create_app(make_settings(data_dir))
    return _app_holder["app"]


def _schema():
    """The document /openapi.json serves (``app.openapi()``), read without starting the app: ``from_asgi``
    fetches it through a test client, whose lifespan (about 6 s of CPU) ran at collection in every
    xdist worker, also in the one that does not run this module. The calls go to the app all the same."""
    import json

    loaded = schemathesis.openapi.from_dict(json.loads(json.dumps(_app().openapi())))
    loaded.app, loaded.location = _app(), "/openapi.json"
    return loaded


# Readiness answers 503 by design here (no Dagster or Ray in this test): it is not fuzzed.
schema = _schema().exclude(path="/health/ready")


@pytest.fixture(scope="module", autouse=True)
def _lifespan():
    with TestClient(_app()):  # runs the lifespan: verifier, tables, audit writer
        yield


CHECKS = [checks.not_a_server_error, checks.status_code_conformance, checks.content_type_conformance,
          checks.response_headers_conformance, checks.response_schema_conformance, checks.negative_data_rejection,
          checks.missing_required_header, checks.unsupported_method, checks.ignored_auth]


@schema.parametrize()
# derandomized: the same examples every run, so a CI run fails for a change, not for a draw
@hypothesis_settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_every_answer_is_documented_and_none_is_a_server_error(case):
    case.call_and_validate(headers=auth(make_token("fuzz-tenant")), checks=CHECKS)
