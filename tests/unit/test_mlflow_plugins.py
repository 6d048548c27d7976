"""MLflow's first REST call in a process loads every ``mlflow.request_header_provider``; feast's
imports all of feast and torch (5-9 s). The platform leaves it out, and nothing else."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

from resources.infra.mlflow_plugins import HEADER_PROVIDERS, skip_feast_header_provider
from tests.utils.platform import REPO_ROOT


def test_feasts_header_provider_is_left_out_and_nothing_else():
    from mlflow.utils import plugins

    # what is installed (importlib's own list: other tests in this process may have filtered MLflow's already)
    before = {group: [e.value for e in importlib.metadata.entry_points(group=group)]
              for group in (HEADER_PROVIDERS, "mlflow.tracking_store")}
    assert any(value.startswith("feast.") for value in before[HEADER_PROVIDERS])  # installed here: the test can fail
    skip_feast_header_provider()
    skip_feast_header_provider()  # idempotent: wrapped once
    after = {group: [e.value for e in plugins.get_entry_points(group)] for group in before}
    assert after[HEADER_PROVIDERS] == [v for v in before[HEADER_PROVIDERS] if not v.startswith("feast.")]
    assert after["mlflow.tracking_store"] == before["mlflow.tracking_store"]


def test_a_process_that_resolves_mlflows_request_headers_does_not_import_feast():
    code = ("from resources.infra.mlflow_plugins import skip_feast_header_provider; skip_feast_header_provider(); "
            "from mlflow.tracking.request_header.registry import resolve_request_headers; resolve_request_headers(); "
            "import sys; print('feast' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"
