"""Every prediction answered 200 has its log record, also when the API process is killed with
SIGKILL in the middle of a load; stopped with SIGTERM under load, it also exits cleanly and
releases its port."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time

import httpx
import pytest
import sqlalchemy as sa

from mlservice.config.settings import Settings
from mlservice.launcher.processes import port_free
from mlservice.launcher.up import free_port
from serving_api.auth import issue_token
from tests.utils.load import predictions_under_load
from tests.utils.mlflow_models import log_sklearn_model
from tests.utils.platform import REPO_ROOT

ROW = {"total_orders": 15, "days_since_last_order": 45, "avg_order_value": 125.5, "support_tickets": 3}
TENANT = "kill-test"
pytestmark = [pytest.mark.integration]


def _start_api(env: dict[str, str], port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "serving_api.main:create_app", "--factory", "--host", "127.0.0.1",
         "--port", str(port), "--no-access-log"],
        cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=open(env["MLSERVICE_DATA_DIR"] + "/api.log", "wb"),
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/live", trust_env=False, timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail("the API did not start")


@pytest.mark.parametrize("stop_signal", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
def test_no_answered_prediction_is_lost_when_the_api_stops_under_load(tmp_path, stop_signal):
    secret = secrets.token_hex(32)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLSERVICE_")}
    env.update(
        MLSERVICE_DATA_DIR=str(tmp_path), MLSERVICE_JWT_SECRET=secret,
        MLSERVICE_MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}",
        MLSERVICE_DAGSTER_URL="http://127.0.0.1:9", MLSERVICE_RAY_DASHBOARD_URL="http://127.0.0.1:9",
        MLSERVICE_RATE_LIMIT_PER_SECOND="100000", MLSERVICE_RATE_LIMIT_BURST="100000",
    )
    settings = Settings(data_dir=tmp_path, jwt_secret=secret, mlflow_tracking_uri=env["MLSERVICE_MLFLOW_TRACKING_URI"])
    run_id = log_sklearn_model(settings, TENANT, kind="forest")
    headers = {"Authorization": f"Bearer {issue_token(settings, tenant_id=TENANT, subject='t', scopes=['admin'], ttl_s=600)}"}
    port = free_port()
    api = _start_api(env, port)
    answered: list[str] = []
    try:
        base = f"http://127.0.0.1:{port}"
        created = httpx.post(f"{base}/api/v1/models", json={"name": "m", "source": {"run_id": run_id}},
                             headers=headers, trust_env=False, timeout=30)
        assert created.status_code == 201, created.text
        model_id = created.json()["model_id"]

        body = {"model_id": model_id, "features": ROW}
        with predictions_under_load(base, headers, body, clients=8, at_least=300, timeout_s=30) as answered:
            os.killpg(api.pid, stop_signal)  # mid-load: requests are in flight
            api.wait(timeout=30)
    finally:
        if api.poll() is None:
            os.killpg(api.pid, signal.SIGKILL)
    assert len(answered) >= 300
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'api' / 'state.db'}")
    with engine.connect() as conn:
        logged = {row[0] for row in conn.execute(sa.text("SELECT request_id FROM prediction_log"))}
    missing = [request_id for request_id in answered if request_id not in logged]
    assert missing == [], f"{len(missing)} answered predictions have no record"
    if stop_signal == signal.SIGTERM:  # a graceful stop: the application shut down (prediction log closed), the port free
        # (uvicorn re-raises the signal once it shut down: the exit status says SIGTERM either way)
        assert api.returncode in (0, -signal.SIGTERM), api.returncode
        assert "Application shutdown complete" in (tmp_path / "api.log").read_text()
        assert port_free(port)
