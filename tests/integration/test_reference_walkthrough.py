"""The API reference's examples work as written: ``mlservice walkthrough`` (what ``make
reference-walkthrough`` runs) sends each of them in order to the shared platform, with only the
placeholders replaced, and checks the documented status and response shape of every answer
(``mlservice/walkthrough.py``): register, list, get, stage change, single and batch prediction,
training to ``succeeded`` with its status, tuning, ensemble create and predict, online features
and materialization, drift, performance, deployment."""

from __future__ import annotations

import subprocess
import sys

from tests.utils.platform import REPO_ROOT, integration_marks

pytestmark = integration_marks(timeout_s=1200)


def test_every_example_of_the_reference_answers_as_documented(up):
    done = subprocess.run([sys.executable, "-m", "mlservice.cli", "walkthrough"], check=False, cwd=REPO_ROOT, env=up.env,
                          capture_output=True, text=True, timeout=1100)
    print(done.stdout)  # each step's line (pytest -rP shows it)
    lines = done.stdout.splitlines()
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr[-3000:]}"
    assert not [line for line in lines if line.startswith("FAIL")], done.stdout
    # every step printed its line: the reference's requests and the walkthrough's few setup steps
    sent = [line for line in lines if line.startswith("ok")]
    assert len(sent) >= 24 and lines[-1] == f"{len(sent)} of {len(sent)} steps as documented", done.stdout
    for path in ("/api/v1/training", "/api/v1/tuning", "/api/v1/ensembles", "/api/v1/features/materialize",
                 "/api/v1/predictions/batch", "/api/v1/deployments"):
        assert any(f" {path}" in line for line in sent), (path, done.stdout)
