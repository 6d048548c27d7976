"""The model core works outside the API: a plain process (as a Ray Data actor or a Serve replica
will be) loads a registered version through the registry and predicts exactly what the API
answers, without importing the API (the import contracts check the core's own imports)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.utils.mlflow_models import log_sklearn_model

ROWS = [{"total_orders": 12, "days_since_last_order": 40, "avg_order_value": 80.5, "support_tickets": 1},
        {"total_orders": 2, "days_since_last_order": 190, "avg_order_value": 20.0, "support_tickets": 6}]
SCRIPT = """
import json, sys
from mlservice.config.settings import Settings
from mlservice.config.wiring import build_registry, build_state_store
from mlservice.inference.loader import load_version
from mlservice.inference.validation import model_inputs

tenant, model_id, rows = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
settings = Settings()
model = load_version(build_registry(settings, build_state_store(settings)), tenant, model_id, "production")
labels, probabilities = model.batch_predict(model_inputs(model, rows))
web = sorted(m for m in sys.modules if m.split(".")[0] in ("serving_api", "uvicorn"))  # (mlflow itself imports fastapi)
print(json.dumps({"version": model.version, "labels": labels.tolist(), "probabilities": probabilities.tolist(), "web": web}))
"""


def test_a_plain_process_loads_a_version_and_predicts_like_the_api(client, settings, tenant, headers):
    created = client.post("/api/v1/models", json={"name": "core", "source": {"run_id": log_sklearn_model(settings, tenant, kind="forest")}},
                          headers=headers)
    assert created.status_code == 201, created.text
    model_id = created.json()["model_id"]
    for stage in ("staging", "production"):
        assert client.put(f"/api/v1/models/{model_id}/stage", json={"version": "1.0.0", "target_stage": stage},
                          headers=headers).status_code == 200
    api = client.post("/api/v1/predictions", json={"model_id": model_id, "instances": ROWS}, headers=headers).json()
    env = {"PATH": "/usr/bin:/bin", "MLSERVICE_DATA_DIR": str(settings.data_dir),
           "MLSERVICE_MLFLOW_TRACKING_URI": settings.effective_tracking_uri, "MLFLOW_DISABLE_TELEMETRY": "true"}
    done = subprocess.run([sys.executable, "-c", SCRIPT, tenant, model_id, json.dumps(ROWS)], env=env,
                          capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["web"] == []
    assert answer["version"] == api["version"] == "1.0.0"
    assert answer["labels"] == api["prediction"] and answer["probabilities"] == api["probabilities"]
