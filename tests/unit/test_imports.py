"""No side effects and no heavy libraries at import of the API or the Dagster definitions."""

from __future__ import annotations

import subprocess
import sys


def test_importing_api_and_definitions_loads_no_heavy_library(tmp_path):
    code = (
        "import sys, serving_api.main, pipelines.definitions, mlservice.cli, mlservice.launcher;"
        "print(sorted(m for m in ('mlflow', 'ray', 'torch', 'feast', 'sklearn') if m in sys.modules))"
    )
    env = {"PATH": "/usr/bin:/bin", "MLSERVICE_DATA_DIR": str(tmp_path / "data")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True, cwd=str(tmp_path))
    assert out.stdout.strip() == "[]"
    assert not (tmp_path / "data").exists()  # nothing created at import
