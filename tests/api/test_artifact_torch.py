"""The platform's torch model is accepted only as the platform writes it, and served without
executing the pyfunc file the artifact carries (issue 9, section 1)."""

from __future__ import annotations

import json

import pytest

from tests.utils import hostile_models as hostile
from tests.utils.api import error_envelope

ROW = {"total_orders": 12.0, "days_since_last_order": 40.0, "avg_order_value": 80.5, "support_tickets": 1.0}


def _register(client, headers, run_id, name="mlp"):
    return client.post("/api/v1/models", json={"name": name, "framework": "pytorch", "source": {"run_id": run_id}},
                       headers=headers)


def test_the_platforms_torch_model_registers_and_serves(client, settings, tenant, headers):
    created = _register(client, headers, hostile.log_platform_torch_model(settings, tenant))
    assert created.status_code == 201, created.text
    response = client.post("/api/v1/predictions", json={"model_id": created.json()["model_id"], "features": ROW},
                           headers=headers)
    assert response.status_code == 200, response.text
    probabilities = response.json()["probabilities"][0]
    assert len(probabilities) == 2 and abs(sum(probabilities) - 1) < 1e-9


def test_code_planted_in_the_pyfunc_file_after_registration_never_runs(client, settings, tenant, headers, tmp_path, monkeypatch):
    marker = tmp_path / "marker"
    monkeypatch.setenv(hostile.MARKER_ENV, str(marker))
    run_id = hostile.log_platform_torch_model(settings, tenant)
    created = _register(client, headers, run_id, name="planted")
    assert created.status_code == 201, created.text
    pyfunc = hostile.logged_model_dir(settings, run_id) / "torch_pyfunc.py"
    pyfunc.write_text(hostile._PAYLOAD + pyfunc.read_text())
    response = client.post("/api/v1/predictions", json={"model_id": created.json()["model_id"], "features": ROW},
                           headers=headers)
    error_envelope(response, 503, "MODEL_ARTIFACT_CHANGED")
    assert response.json()["error"]["details"]["files"] == ["torch_pyfunc.py"]
    assert not marker.exists()


@pytest.mark.parametrize("tamper, refused", [
    (lambda d: (d / "torch_pyfunc.py").write_text((d / "torch_pyfunc.py").read_text() + "\nimport os\n"),
     "not the platform's own file"),
    (lambda d: (d / "artifacts/state/arch.json").write_text(
        json.dumps({**json.loads((d / "artifacts/state/arch.json").read_text()),
                    "arch": {**json.loads((d / "artifacts/state/arch.json").read_text())["arch"], "hidden": [9]}})),
     "weights"),
    (lambda d: (d / "artifacts/state/arch.json").write_text(
        json.dumps({**json.loads((d / "artifacts/state/arch.json").read_text()),
                    "arch": {**json.loads((d / "artifacts/state/arch.json").read_text())["arch"], "hidden": [10**9]}})),
     "hidden"),
    (lambda d: (d / "artifacts/state/extra.pkl").write_bytes(b"\x80\x04N."), "files this kind of model does not have"),
])
def test_a_changed_torch_artifact_is_refused(client, settings, tenant, headers, tamper, refused):
    run_id = hostile.log_platform_torch_model(settings, tenant, tamper=tamper)
    response = _register(client, headers, run_id)
    assert response.status_code == 400, response.text
    assert refused in response.json()["error"]["message"]
