"""The OpenAPI document against the running platform (``make up``: MLflow, Dagster, Ray and the
API as processes), with schemathesis's own runner and its full set of checks: no server error,
every status, content type, header and body as documented, schema-violating requests refused,
missing auth refused, unsupported methods 405, auth not ignored. Deterministic generation, a few
examples per operation (the fast tier runs 30 against the app in process:
tests/api/test_fuzz_openapi.py).

Left out, as there: ``positive_data_acceptance`` (a schema-valid request may break a rule beyond
the schema: a model id that does not exist, a data path outside the tenant's area; answered
400/404 as documented)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.utils.platform import REPO_ROOT, integration_marks

TENANT = "fuzz-live"
pytestmark = integration_marks(timeout_s=900)


def test_the_running_platform_answers_as_its_openapi_document_says(up, tmp_path):
    token = subprocess.run(
        [sys.executable, "-m", "mlservice.cli", "token", "--tenant", TENANT, "--ttl", "3600"],
        cwd=REPO_ROOT, env=up.env, capture_output=True, text=True, check=True, timeout=60,
    ).stdout.strip()
    schemathesis = Path(sys.executable).parent / "schemathesis"
    run = subprocess.run(
        [str(schemathesis), "run", f"{up.api}/openapi.json", "--header", f"Authorization: Bearer {token}",
         "--checks", "all", "--exclude-checks", "positive_data_acceptance",
         "--phases", "examples,coverage,fuzzing", "--max-examples", "8", "--seed", "0", "--generation-deterministic",
         "--workers", "1", "--request-timeout", "60", "--no-color", "--report", "junit",
         "--report-junit-path", str(tmp_path / "junit.xml")],
        cwd=tmp_path, capture_output=True, text=True, timeout=840, check=False,
    )
    assert run.returncode == 0, run.stdout[-12000:] + run.stderr[-2000:]
