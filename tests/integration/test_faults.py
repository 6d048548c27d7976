"""Faults of the platform's parts, injected into a platform of this module's own (started without
the demo; the shared platform's tests run beside it on the tier's other worker), and what the
platform does about them:

- a training run's worker killed with SIGKILL mid-fit: the job ends ``failed`` saying so (run
  monitoring with the platform's worker health check), no version is registered, Ray ends the fit,
  and the same request again succeeds;
- MLflow hung (SIGSTOP: connections accepted, never answered) and then killed: registry calls
  answer 503 SERVICE_UNAVAILABLE within seconds (the first one timeout, the next at once with
  Retry-After), a production model keeps serving from the cache, and the API recovers by itself when
  MLflow answers again (SIGCONT; after the kill, the launcher restarts it);
- the Ray head killed: new jobs answer 503 RAY_UNAVAILABLE with nothing stored, the loaded model
  keeps answering, the launcher restarts Ray and jobs run again, the API process unchanged;
- the Dagster daemon killed while a job waits in the queue, the webserver killed: the queued job
  runs once the daemon is back, job reads answer meanwhile, submissions are 503 until the
  webserver is back;
- a cancellation that reaches a running fit only as the run's status (CANCELING, what Dagster's
  launcher records when it cannot reach the run's code server: a run cancelled while it starts):
  the run worker stops itself (pipelines/instance.py), Ray ends the fit, nothing is registered.

The platform restarted with a job running is in test_platform_up.py (its last test restarts the
platform); SIGTERM/SIGKILL of the API under load in test_api_kill.py.
"""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest

from tests.integration.conftest import own_platform
from tests.utils.datasets import breast_cancer
from tests.utils.platform import (
    follow_job,
    integration_marks,
    parts,
    run_events,
    run_worker_pid,
    running_ray_tasks,
    signal_part,
    tenant_client,
    wait_for,
    wait_restarted,
)

TENANT = "fault-lab"
pytestmark = integration_marks(timeout_s=900)

QUICK_FIT = {"model_name": "after_a_fault", "estimator": "random_forest",
             "data_config": {"train_path": "bc/train.parquet", "target_column": "target"},
             "hyperparameters": {"n_estimators": 10, "max_depth": 4, "random_state": 0}}
# single-row mini-batches: ~40 s of partial_fit calls on Ray (1.3 s an epoch on 2 cores), long enough to be killed in
SLOW_FIT = {"model_name": "killed_mid_fit", "estimator": "mlp",
            "data_config": {"train_path": "bc/train.parquet", "target_column": "target", "batch_size": 1},
            "training_config": {"epochs": 30}, "hyperparameters": {"hidden_layer_sizes": [32], "random_state": 0}}


@pytest.fixture(scope="module")
def up(tmp_path_factory):
    with own_platform(tmp_path_factory, "faults", args=("--no-demo",)) as platform:
        yield platform


@pytest.fixture(scope="module")
def api(up):
    folder = up.data_dir / "tenants" / TENANT / "bc"
    previous = os.umask(0o077)  # owner-only, as the platform keeps its data dir (test_platform_up checks it)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        breast_cancer(snake_case=True).to_parquet(folder / "train.parquet", index=False)
    finally:
        os.umask(previous)
    with tenant_client(up, TENANT) as client:
        yield client


@pytest.fixture(scope="module")
def served(api):
    """A production model of this module's tenant, loaded by one prediction (its own model: the
    demo model's prediction window feeds the drift test of test_platform_up.py, and this module's
    predictions would shift it)."""
    accepted = api.post("/api/v1/training", json={**QUICK_FIT, "model_name": "served_through_faults"})
    assert accepted.status_code == 202, accepted.text
    trained = follow_job(api, f"/api/v1/training/{accepted.json()['job_id']}")
    assert trained["status"] == "succeeded", trained
    model_id = trained["model_id"]
    promoted = api.put(f"/api/v1/models/{model_id}/stage", json={"version": "1.0.0", "target_stage": "production", "via": "staging"})
    assert promoted.status_code == 200, promoted.text
    row = breast_cancer(snake_case=True).drop(columns=["target"]).iloc[0].to_dict()
    body = {"model_id": model_id, "features": row}
    assert api.post("/api/v1/predictions", json=body).status_code == 200
    return {"id": model_id}, body


def _error(response: httpx.Response) -> str:
    return response.json()["error"]["code"] if response.status_code >= 400 else ""


def _fitting(api: httpx.Client, up, path: str) -> dict:
    """The job at ``path`` once it runs and its fit runs on Ray."""
    def fitting():
        job = api.get(path).json()
        assert job["status"] in ("submitted", "queued", "running"), job
        return job if job["status"] == "running" and running_ray_tasks(up, "_sklearn_task") else None

    return wait_for("the fit running on Ray", fitting, timeout_s=240, every_s=1)


def test_a_run_worker_killed_mid_fit_fails_the_job_registers_nothing_and_a_retry_succeeds(api, up):
    accepted = api.post("/api/v1/training", json=SLOW_FIT)
    assert accepted.status_code == 202, accepted.text
    path = f"/api/v1/training/{accepted.json()['job_id']}"
    job = _fitting(api, up, path)
    os.kill(run_worker_pid(up, job["dagster_run_id"]), signal.SIGKILL)
    killed_at = time.monotonic()

    failed = follow_job(api, path, timeout_s=120)
    assert failed["status"] == "failed", failed
    why = failed["error"]
    assert "run worker" in why and "killed or crashed" in why, (why, run_events(up, job["dagster_run_id"])[-5:])
    assert time.monotonic() - killed_at < 60  # run monitoring looks every 10 s
    # nothing registered, and the fit the dead worker drove is gone from the cluster
    listed = api.get("/api/v1/models", params={"name_prefix": SLOW_FIT["model_name"]}).json()["data"]
    assert [m for m in listed if m.get("current_version")] == [], listed
    wait_for("Ray to end the dead driver's fit", lambda: not running_ray_tasks(up, "_sklearn_task"), timeout_s=60, every_s=1)

    retry = api.post("/api/v1/training", json=SLOW_FIT)
    assert retry.status_code == 202, retry.text
    done = follow_job(api, f"/api/v1/training/{retry.json()['job_id']}", timeout_s=400)
    assert done["status"] == "succeeded" and done["model_version"] == "1.0.0", done


def test_mlflow_hung_then_killed_is_503_within_seconds_while_the_cached_model_serves(up, api, served):
    client, (model, body) = api, served
    signal_part(up, "mlflow", signal.SIGSTOP)
    try:
        began = time.monotonic()
        first = client.get("/api/v1/models")
        first_took = time.monotonic() - began
        assert (first.status_code, _error(first)) == (503, "SERVICE_UNAVAILABLE"), first.text
        assert first_took < 15, first_took  # one client timeout (5 s, one retry), not 3 x 30 s
        began = time.monotonic()
        second = client.get(f"/api/v1/models/{model['id']}")
        assert (second.status_code, _error(second)) == (503, "SERVICE_UNAVAILABLE"), second.text
        assert time.monotonic() - began < 2 and int(second.headers["Retry-After"]) >= 1  # the breaker: at once
        # the production model keeps answering past its resolution's TTL (10 s), from the cache
        until = time.monotonic() + 12
        answers = []
        while time.monotonic() < until:
            answers.append(client.post("/api/v1/predictions", json=body).status_code)
            time.sleep(0.5)
        assert set(answers) == {200}, answers
    finally:
        signal_part(up, "mlflow", signal.SIGCONT)
    wait_for("the registry answering again", lambda: client.get("/api/v1/models").status_code == 200, timeout_s=30, every_s=1)

    # killed outright: connection refused at once, and the launcher starts it again
    restarts = up.log().count("restarted mlflow (")
    signal_part(up, "mlflow", signal.SIGKILL)
    down = client.get("/api/v1/models")
    assert down.status_code in (200, 503) and _error(down) in ("", "SERVICE_UNAVAILABLE"), down.text
    wait_restarted(up, "mlflow", times=restarts + 1)
    wait_for("the registry answering after the restart", lambda: client.get("/api/v1/models").status_code == 200, timeout_s=90, every_s=1)
    assert client.post("/api/v1/predictions", json=body).status_code == 200


def test_the_ray_head_killed_is_503_for_jobs_while_models_serve_and_jobs_run_after_its_restart(api, up, served):
    client, (_, body) = api, served
    api_pids = sorted(parts(up)["api"])
    restarts = up.log().count("restarted ray (")
    jobs_before = len(api.get("/api/v1/jobs", params={"limit": 100}).json()["data"])
    assert up.ray_healthy()
    signal_part(up, "ray", signal.SIGKILL)
    wait_for("the Ray head to go", lambda: not up.ray_healthy(), timeout_s=10, every_s=0.1)
    refused = api.post("/api/v1/training", json=QUICK_FIT)
    assert (refused.status_code, _error(refused)) == (503, "RAY_UNAVAILABLE"), refused.text
    assert len(api.get("/api/v1/jobs", params={"limit": 100}).json()["data"]) == jobs_before  # nothing stored
    assert [client.post("/api/v1/predictions", json=body).status_code for _ in range(5)] == [200] * 5

    wait_restarted(up, "ray", times=restarts + 1)
    wait_for("Ray to come back", up.ray_healthy, timeout_s=120, every_s=1)
    accepted = wait_for("a job accepted again",
                      lambda: (r := api.post("/api/v1/training", json=QUICK_FIT)).status_code == 202 and r, timeout_s=60)
    done = follow_job(api, f"/api/v1/training/{accepted.json()['job_id']}", timeout_s=400)
    assert done["status"] == "succeeded", done
    assert sorted(parts(up)["api"]) == api_pids  # the same API process throughout


def test_the_dagster_daemon_and_webserver_killed_queued_jobs_run_and_reads_recover(api, up):
    # a job fitting when the daemon dies goes on: its run worker belongs to the code server, not the daemon
    running = api.post("/api/v1/training", json={**SLOW_FIT, "model_name": "through_a_daemon_restart"})
    assert running.status_code == 202, running.text
    running_path = f"/api/v1/training/{running.json()['job_id']}"
    fitting = _fitting(api, up, running_path)
    worker = run_worker_pid(up, fitting["dagster_run_id"])
    # the daemon hangs, then dies, with a job waiting in the queue
    signal_part(up, "dagster-daemon", signal.SIGSTOP)
    daemon_restarts = up.log().count("restarted dagster-daemon (")
    try:
        accepted = api.post("/api/v1/training", json=QUICK_FIT)
        assert accepted.status_code == 202, accepted.text
        path = f"/api/v1/training/{accepted.json()['job_id']}"
        time.sleep(3)
        assert api.get(path).json()["status"] in ("submitted", "queued"), "nothing dequeues while the daemon is stopped"
    finally:
        signal_part(up, "dagster-daemon", signal.SIGKILL)  # SIGKILL ends a stopped process too
    wait_restarted(up, "dagster-daemon", times=daemon_restarts + 1)
    done = follow_job(api, path, timeout_s=400)
    assert done["status"] == "succeeded", done
    went_on = follow_job(api, running_path, timeout_s=400)
    assert went_on["status"] == "succeeded" and went_on["progress"]["current_epoch"] == SLOW_FIT["training_config"]["epochs"], went_on
    assert run_worker_pid(up, fitting["dagster_run_id"]) == worker  # the same worker throughout, never restarted

    # the webserver killed: reads answer the last known state, submissions are 503 with nothing stored
    web_restarts = up.log().count("restarted dagster-webserver (")
    jobs_before = len(api.get("/api/v1/jobs", params={"limit": 100}).json()["data"])
    signal_part(up, "dagster-webserver", signal.SIGKILL)
    read = api.get(path)
    assert read.status_code == 200 and read.json()["status"] == "succeeded", read.text
    refused = api.post("/api/v1/training", json=QUICK_FIT)
    if refused.status_code != 202:  # unless the restarted webserver was already up
        assert (refused.status_code, _error(refused)) == (503, "SERVICE_UNAVAILABLE"), refused.text
        assert len(api.get("/api/v1/jobs", params={"limit": 100}).json()["data"]) == jobs_before
    wait_restarted(up, "dagster-webserver", times=web_restarts + 1)
    accepted = wait_for("a job accepted again",
                      lambda: (r := api.post("/api/v1/training", json=QUICK_FIT)).status_code == 202 and r, timeout_s=120)
    assert follow_job(api, f"/api/v1/training/{accepted.json()['job_id']}", timeout_s=400)["status"] == "succeeded"


def test_a_run_told_to_cancel_only_through_its_status_stops_and_its_fit_ends(api, up, monkeypatch):
    """Found in CI: a training job cancelled 3 s after submission read ``cancelled`` while its run,
    caught between the queue and its launch, fitted for minutes and held a CPU (a batch job after
    it waited for that CPU past its test's 400 s). Dagster's launcher could not send that run the
    termination and marked it CANCELING, which the worker did not read; now it does."""
    from dagster import DagsterInstance, DagsterRunStatus

    accepted = api.post("/api/v1/training", json={**SLOW_FIT, "model_name": "cancelled_through_status"})
    assert accepted.status_code == 202, accepted.text
    path = f"/api/v1/training/{accepted.json()['job_id']}"
    job = _fitting(api, up, path)

    monkeypatch.setenv("MLSERVICE_DAGSTER_STORAGE_DIR", str(up.data_dir / "dagster" / "storage"))
    with DagsterInstance.from_config(str(up.data_dir / "dagster")) as instance:
        run = instance.get_run_by_id(job["dagster_run_id"])
        instance.report_run_canceling(run)  # the status only: no termination request reaches the worker
        marked = time.monotonic()
        wait_for("the run worker to stop its run", lambda: instance.get_run_by_id(run.run_id).status
                 == DagsterRunStatus.CANCELED, timeout_s=60, every_s=1)
    assert time.monotonic() - marked < 30  # the worker reads its status every 2 s
    wait_for("Ray to end the cancelled run's fit", lambda: not running_ray_tasks(up, "_sklearn_task"), timeout_s=10, every_s=1)
    ended = follow_job(api, path, timeout_s=60)
    assert ended["status"] == "cancelled" and ended["model_version"] is None, ended
    listed = api.get("/api/v1/models", params={"name_prefix": "cancelled_through_status"}).json()["data"]
    assert [m for m in listed if m.get("current_version")] == [], listed
