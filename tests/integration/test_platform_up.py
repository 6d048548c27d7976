"""End to end: ``mlservice up`` exactly as ``make up`` runs it, checked over real HTTP on loopback.

The platform (Ray head, MLflow server, Dagster webserver and daemon, demo seed, API) is the
integration tier's shared one (``tests/integration/conftest.py``); the last test kills its
launcher (SIGKILL), checks that no child process survives, and starts it again on the same data
directory (the modules after this one use that second instance; the session's end stops it as
Ctrl-C would, within 20 s). Takes a few minutes.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import time

from mlservice.demo.traffic import SHIFTED_FEATURE, TRAFFIC_ROWS
from tests.integration.conftest import DEMO_MODEL, DEMO_TENANT, JWT_CANARY
from tests.utils.platform import (
    REPO_ROOT,
    assert_groups_gone,
    bearer,
    busy_ports,
    cmdline,
    environ,
    integration_marks,
    parts,
    processes_of,
    run_worker_pid,
    running_ray_tasks,
    ss_listening,
    start,
    wait_deployment,
    wait_for,
)

pytestmark = integration_marks(timeout_s=600)


def test_health(up, http):
    assert http.get(f"{up.api}/health/live").status_code == 200
    ready = http.get(f"{up.api}/health/ready")
    assert ready.status_code == 200
    assert ready.json()["components"] == {"mlflow": "ok", "dagster": "ok", "ray": "ok"}


def test_banner_token_and_curl_lines(up, http):
    log = up.log()
    assert "export TOKEN=" in log
    curls = [line.strip() for line in log.splitlines() if line.strip().startswith("curl ")]
    url = shlex.split(curls[0])[-1]  # the printed command, quoting and all
    assert url.startswith(f"{up.api}/api/v1/models")
    response = http.get(url, headers=bearer(up.token()))
    assert response.status_code == 200, response.text
    [model] = [m for m in response.json()["data"] if m["name"] == DEMO_MODEL]
    assert (model["tenant_id"], model["stage"], model["current_version"]) == (DEMO_TENANT, "production", "1.0.0")
    # The prediction lines, run as printed by a shell with TOKEN exported.
    by_features, by_entity = [c for c in curls if c.endswith("/api/v1/predictions")]
    answer = _run_curl(by_features, up.token())
    assert answer["model_id"] == model["model_id"] and answer["version"] == "1.0.0", answer
    assert answer["prediction"][0] in (0, 1) and len(answer["probabilities"][0]) == 2
    explanation = answer["explanation"]
    assert abs(explanation["base_value"] + sum(explanation["contributions"].values()) - explanation["output"]) < 1e-6
    # by entity: the model was trained on feature service churn_v1, its features come from the online store
    answer = _run_curl(by_entity, up.token())
    assert answer["entity"] == {"customer_id": "cust-123"} and answer["prediction"][0] in (0, 1), answer
    assert set(answer["features"]) == {"total_orders", "days_since_last_order", "avg_order_value", "support_tickets"}
    [lookup] = [c for c in curls if "/api/v1/features/online" in c]
    results = _run_curl(lookup, up.token())["results"]
    assert [r["customer_id"] for r in results] == ["cust-123", "cust-456"]
    assert all(r["status"] == "ok" for r in results), results
    assert results[0]["total_orders"] == answer["features"]["total_orders"]
    # monitoring: the demo traffic shifted one feature, and half of it was labelled
    [drift_line] = [c for c in curls if "/monitoring/" in c and "/drift" in c]
    drift = _run_curl(drift_line, up.token())
    drifted = {name for name, result in drift["results"].items() if result["drifted"]}
    assert drifted == {SHIFTED_FEATURE} and drift["features_checked"] == 4, drift
    assert drift["current"]["rows"] >= TRAFFIC_ROWS
    [performance_line] = [c for c in curls if "/performance" in c]
    performance = _run_curl(performance_line, up.token())
    assert performance["answered"] >= TRAFFIC_ROWS and performance["latency_ms"]["p50"] > 0
    truth = performance["ground_truth"]
    assert truth["labelled_rows"] > TRAFFIC_ROWS * 0.4 and 0.5 < truth["metrics"]["accuracy"] <= 1


def _run_curl(line: str, token: str) -> dict:
    result = subprocess.run(["bash", "-c", line], env={"TOKEN": token, "PATH": "/usr/bin:/bin"},
                            capture_output=True, text=True, timeout=60, check=False)
    return json.loads(result.stdout)


def test_demo_features_were_materialized_by_a_dagster_run(up, http):
    """make up applied acme-corp's feature definitions and materialized them through the API."""
    import pandas as pd

    jobs = http.get(f"{up.api}/api/v1/jobs", params={"kind": "materialization"}, headers=bearer(up.token())).json()["data"]
    assert jobs and jobs[-1]["status"] == "succeeded" and jobs[-1]["dagster_run_id"], jobs
    source = pd.read_parquet(up.data_dir / "tenants" / DEMO_TENANT / "features" / "customer_features.parquet")
    latest = source.sort_values("event_timestamp").groupby("customer_id").tail(1).set_index("customer_id")
    body = {"feature_refs": ["customer_features:total_orders", "customer_features:avg_order_value"],
            "entity_rows": [{"customer_id": "cust-7"}, {"customer_id": "cust-19999"}]}
    results = http.post(f"{up.api}/api/v1/features/online", json=body, headers=bearer(up.token())).json()["results"]
    for result in results:
        expected = latest.loc[result["customer_id"]]
        assert result["total_orders"] == expected["total_orders"]
        assert abs(result["avg_order_value"] - expected["avg_order_value"]) < 1e-9


def test_incremental_materialization_through_the_api(up, http):
    headers = bearer(up.token())
    accepted = http.post(f"{up.api}/api/v1/features/materialize", headers=headers,
                         json={"feature_views": ["order_features"], "incremental": True})
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["job_id"]
    deadline = time.monotonic() + 240
    while True:
        job = http.get(f"{up.api}/api/v1/jobs/{job_id}", headers=headers).json()
        if job["status"] in ("succeeded", "failed", "cancelled") or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert job["kind"] == "materialization" and job["status"] == "succeeded", job
    assert set(job["result"]) == {"order_features"}  # only the view asked for ran
    window = job["result"]["order_features"]
    assert window["start"] < window["end"]


def test_a_run_the_daemon_launched_answers_as_a_job(up, http):
    """What the hourly schedule does: a job record without a run id, and a run tagged with the job
    id launched by Dagster itself; GET /api/v1/jobs/{id} finds the run by its tag and follows it."""
    from mlservice.config.settings import Settings
    from mlservice.config.wiring import build_state_store
    from resources.features.materialization_spec import FEATURE_MATERIALIZATION_JOB, MaterializationConfig, materialization_run_config
    from resources.infra.dagster_runs import DagsterRuns
    from resources.jobs.records import JobStore
    from resources.jobs.specs import JobContext

    state = build_state_store(Settings(data_dir=up.data_dir))
    try:
        record, _ = JobStore(state).create(DEMO_TENANT, kind="materialization", request={"incremental": True},
                                           submitted_by="schedule:test")
    finally:
        state.dispose()
    config = MaterializationConfig(context=JobContext(tenant_id=DEMO_TENANT, job_id=record.job_id, requested_by="schedule:test"),
                                   feature_views=["customer_features"], incremental=True)
    DagsterRuns(f"http://127.0.0.1:{up.ports['DAGSTER']}").launch(
        FEATURE_MATERIALIZATION_JOB, materialization_run_config(config),
        {"mlservice/tenant": DEMO_TENANT, "mlservice/job_id": record.job_id, "mlservice/kind": "materialization"},
    )
    deadline = time.monotonic() + 240
    while True:
        job = http.get(f"{up.api}/api/v1/jobs/{record.job_id}", headers=bearer(up.token())).json()
        if job["status"] in ("succeeded", "failed", "cancelled") or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert job["status"] == "succeeded" and job["dagster_run_id"], job
    assert set(job["result"]) == {"customer_features"}


def test_cli_token_for_another_tenant_is_isolated(up, http):
    result = subprocess.run([sys.executable, "-m", "mlservice.cli", "token", "--tenant", "other-co"],
                            cwd=REPO_ROOT, env=up.env, capture_output=True, text=True, timeout=60, check=True)
    other = bearer(result.stdout.strip())
    listed = http.get(f"{up.api}/api/v1/models", headers=other)
    assert listed.status_code == 200, listed.text
    assert listed.json()["data"] == []
    demo = http.get(f"{up.api}/api/v1/models", headers=bearer(up.token()), params={"name_prefix": DEMO_MODEL})
    model_id = demo.json()["data"][0]["model_id"]
    foreign = http.get(f"{up.api}/api/v1/models/{model_id}", headers=other)
    assert foreign.status_code == 404
    assert foreign.json()["error"]["code"] == "MODEL_NOT_FOUND"


def test_no_token_is_401_with_challenge(up, http):
    response = http.get(f"{up.api}/api/v1/models")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["error"]["code"] == "UNAUTHORIZED"


def test_metrics(up, http):
    response = http.get(f"{up.api}/metrics")
    assert response.status_code == 200
    assert "mlservice_http_requests_total" in response.text


def test_dagster_graphql_has_code_location(up, http):
    url = f"http://127.0.0.1:{up.ports['DAGSTER']}/graphql"
    assert http.post(url, json={"query": "{ version }"}).json()["data"]["version"]
    query = """{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus
        locationOrLoadError { __typename ... on RepositoryLocation { repositories { name } }
                              ... on PythonError { message } } } } } }"""
    # The webserver loads workspace.yaml at start; poll a little in case the location is reloading.
    deadline = time.monotonic() + 60
    while True:
        body = http.post(url, json={"query": query}).json()
        entries = {e["name"]: e for e in (body.get("data") or {}).get("workspaceOrError", {}).get("locationEntries", [])}
        entry = entries.get("mlservice") or {}
        if entry.get("loadStatus") == "LOADED" or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert (entry.get("locationOrLoadError") or {}).get("__typename") == "RepositoryLocation", body
    assert entry["locationOrLoadError"]["repositories"], body


def test_mlflow_has_registered_model(up, http):
    response = http.get(f"http://127.0.0.1:{up.ports['MLFLOW']}/api/2.0/mlflow/registered-models/get",
                        params={"name": f"{DEMO_TENANT}.{DEMO_MODEL}"})
    assert response.status_code == 200, response.text
    assert response.json()["registered_model"]["name"] == f"{DEMO_TENANT}.{DEMO_MODEL}"


def test_dev_jwt_secret_generated(up):
    secret = up.data_dir / "secrets" / "jwt_secret"
    assert secret.is_file() and len(secret.read_text().strip()) >= 32
    assert secret.stat().st_mode & 0o077 == 0  # owner-only


def test_nothing_listens_beyond_loopback(up, http):
    """While a fit runs on Ray (so a Ray worker listens too: a job's workers end with its driver):
    every socket any process of the platform listens on is loopback, as /proc and ss both see it;
    no Ray client server runs."""
    headers = bearer(up.token())
    slow = http.post(f"{up.api}/api/v1/training", headers=headers, json={
        "model_name": "listening_check", "estimator": "mlp", "training_config": {"epochs": 5000},
        "data_config": {"train_path": "s3://data/train.parquet", "target_column": "churned", "batch_size": 1}})
    assert slow.status_code == 202, slow.text
    try:
        wait_for("a fit running on Ray", lambda: running_ray_tasks(up, "_sklearn_task"), timeout_s=180, every_s=1)
        _only_loopback(up)
    finally:
        http.post(f"{up.api}/api/v1/training/{slow.json()['job_id']}/cancel", headers=headers)


def _only_loopback(up) -> None:
    from mlservice.launcher import exposure

    found = parts(up)
    assert {"api", "ray", "mlflow", "dagster-webserver", "dagster-daemon", "s3"} <= set(found), found
    pids = {pid for pids in found.values() for pid in pids}
    listening = exposure.listeners(pids)
    ports = {item.port for item in listening}
    assert {up.ports["API"], up.ports["DAGSTER"], up.ports["MLFLOW"], up.ports["RAY"], up.ports["RAY_DASHBOARD"],
            up.ports["S3"]} <= ports
    assert any(item.process.startswith("ray::") and item.port in range(10002, 20000) for item in listening), listening
    assert {item.process for item in listening} >= {"gcs_server", "raylet"}
    assert [str(item) for item in listening if not exposure.is_loopback(item.address)] == []
    assert not [pid for pid in pids if "ray.util.client.server" in cmdline(pid)]  # no ray:// server
    if shutil.which("ss"):  # the same from ss's side
        seen = ss_listening(pids)
        assert len(seen) >= len(listening) - 2, seen  # sockets may come and go in between
        assert [line for address, line in seen if not exposure.is_loopback(address)] == []


def test_embedded_s3_serves_the_demo_files_on_loopback(up, monkeypatch):
    """make up started moto's S3 server on loopback only, seeded it, and gave the API its endpoint,
    credentials and the demo tenant's grant: the API-side storage module finds the files to score."""
    from mlservice.config.settings import Settings
    from mlservice.config.wiring import build_data_policy
    from mlservice.launcher import exposure
    from resources.data import storage

    found = parts(up)
    listening = exposure.listeners(found["s3"])
    assert {item.port for item in listening} == {up.ports["S3"]}, listening
    assert all(exposure.is_loopback(item.address) for item in listening), listening
    api_env = environ(found["api"][0])
    assert api_env["MLSERVICE_S3_ENDPOINT_URL"] == f"http://127.0.0.1:{up.ports['S3']}"
    for name in ("MLSERVICE_S3_ENDPOINT_URL", "MLSERVICE_S3_TENANT_BUCKETS", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                 "AWS_DEFAULT_REGION"):
        monkeypatch.setenv(name, api_env[name])
    policy = build_data_policy(Settings(data_dir=up.data_dir))
    for key, rows in (("customers_to_score.parquet", 10_000), ("train.parquet", None), ("val.parquet", None)):
        location = policy.resolve(DEMO_TENANT, f"s3://data/{key}")
        assert storage.exists(location, policy), key
        assert rows is None or storage.parquet_rows(location, policy) == rows
    assert "embedded S3 at" in up.log() and "S3 (embedded)" in up.log()  # the seed's line and the banner's


def test_mlflow_runs_without_its_job_runner(up):
    """MLflow's GenAI job runner (huey consumers polling all the time) is off: the platform uses none
    of its jobs (mlservice/launcher/up.py, MLFLOW_SERVER_ENV)."""
    running = [cmdline(pid) for pid in processes_of(up.data_dir)]
    assert any("mlflow server" in command or "mlflow.server" in command for command in running), running
    assert [command for command in running if "huey" in command] == []


def test_no_signing_key_in_ray_mlflow_or_dagster_processes(up):
    name, value = JWT_CANARY
    dev_secret = (up.data_dir / "secrets" / "jwt_secret").read_text().strip()
    found = parts(up)
    assert all(environ(pid).get(name) == value for pid in found["api"])  # it did reach the launcher
    others = {part: pids for part, pids in found.items() if part != "api"}
    assert sum(len(pids) for pids in others.values()) >= 5, others
    checked = 0
    for part, pids in others.items():
        for pid in pids:
            env = environ(pid)
            assert not [key for key in env if "JWT" in key.upper()], (part, pid)
            assert dev_secret not in "".join(env.values()), (part, pid)
            # Ray names its workers and agents with setproctitle, which writes the title over the
            # argv and environment memory that /proc/<pid>/environ shows: their first entries can be
            # gone there (seen: ray::DashboardAgent without the variable, once in four runs). Their
            # parents (raylet, GCS, ray start) are read intact and they inherit from them.
            if not cmdline(pid).startswith("ray::"):
                assert env.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER") == "0", (part, pid, cmdline(pid)[:300])
                checked += 1
    assert checked >= 5, others


def test_data_dir_is_owner_only(up):
    assert stat.S_IMODE(up.data_dir.stat().st_mode) == 0o700
    state_files = [up.data_dir / "api" / "state.db", up.data_dir / "mlflow" / "mlflow.db",
                   up.data_dir / "logs" / "api.log", up.data_dir / "dagster" / "dagster.yaml"]
    feast = {path.name for path in up.data_dir.rglob("*.db")}  # the tenant's Feast registry and online store
    assert {"registry.db", "online_store.db"} <= feast and all(path.is_file() for path in state_files), feast
    loose = []
    for path in up.data_dir.rglob("*"):
        info = path.lstat()
        if stat.S_ISREG(info.st_mode) and info.st_mode & 0o077:
            loose.append(f"{stat.S_IMODE(info.st_mode):o} {path}")
        elif stat.S_ISDIR(info.st_mode) and info.st_mode & 0o077 and "ray" not in path.relative_to(up.data_dir).parts[:1]:
            loose.append(f"{stat.S_IMODE(info.st_mode):o} {path}/")  # Ray makes its own dirs 0777
    assert loose == []


def test_ray_temp_dir_lives_in_the_data_dir(up):
    from mlservice.launcher import state_dirs

    link = state_dirs.ray_temp_dir(up.data_dir)
    assert state_dirs.needs_link(up.data_dir) and link.is_symlink()  # this path is too long for Ray's sockets
    assert link.resolve() == up.data_dir / "ray"
    sessions = list((up.data_dir / "ray").glob("session_2*/sockets/raylet"))
    assert sessions, list((up.data_dir / "ray").iterdir())


def test_training_runs_carry_the_compute_pool_tag(up, http):
    query = """{ runsOrError(filter: {tags: [{key: "mlservice/pool", value: "compute"}]}) {
        ... on Runs { results { jobName status tags { key value } } } } }"""
    body = http.post(f"http://127.0.0.1:{up.ports['DAGSTER']}/graphql", json={"query": query}).json()
    runs = body["data"]["runsOrError"]["results"]
    assert runs and all(run["jobName"] in ("training", "tuning", "batch_scoring") for run in runs), body
    tags = {t["key"]: t["value"] for t in runs[-1]["tags"]}
    assert tags["mlservice/tenant"] == DEMO_TENANT and runs[-1]["status"] == "SUCCESS"
    assert "applyLimitPerUniqueValue" in (up.data_dir / "dagster" / "dagster.yaml").read_text()


def test_drift_launches_retraining_once_and_the_new_version_lands_where_the_policy_says(up, http):
    """The loop on the running platform: the demo traffic drifted; a policy is set; the
    monitored_models sensor added the model's partition; a drift_report run (as the schedule
    launches it) reports drift; the retrain_on_drift sensor launches the version's own training as a
    job of the tenant, once; the new version lands in staging."""
    from resources.infra.dagster_runs import DagsterRuns
    from resources.monitoring.drift_job_spec import DRIFT_REPORT_JOB, monitored_key

    headers = bearer(up.token())
    [model] = [m for m in http.get(f"{up.api}/api/v1/models", headers=headers, params={"name_prefix": DEMO_MODEL}).json()["data"]
               if m["name"] == DEMO_MODEL]
    model_id, url = model["model_id"], f"{up.api}/api/v1/monitoring/{model['model_id']}"
    policy = {"retrain_on_drift": True, "consecutive_reports": 1, "cooldown_hours": 24, "promote": "staging"}
    assert http.put(f"{url}/policy", json=policy, headers=headers).status_code == 200
    dagster = DagsterRuns(f"http://127.0.0.1:{up.ports['DAGSTER']}")
    key = monitored_key(DEMO_TENANT, model_id)
    query = '{ assetNodeOrError(assetKey: {path: ["drift_report"]}) { ... on AssetNode { partitionKeys } } }'
    wait_for("the model's drift_report partition", lambda: key in dagster._query(query, {})["assetNodeOrError"]["partitionKeys"])
    # the hourly drift schedule may have reported already (the shared platform has been up a while)
    earlier = {r["id"] for r in http.get(f"{url}/drift/history", headers=headers).json()["reports"]}
    dagster.launch(DRIFT_REPORT_JOB, {}, {"dagster/partition": key})
    [report] = wait_for("the drift report of that run", lambda: [
        r for r in http.get(f"{url}/drift/history", headers=headers).json()["reports"] if r["id"] not in earlier])
    assert report["status"] == "ok" and report["overall_drift"] is True, report
    assert report["report"]["results"][SHIFTED_FEATURE]["drifted"] is True

    def retraining_jobs():
        listed = http.get(f"{up.api}/api/v1/jobs", headers=headers, params={"kind": "training", "limit": 50}).json()["data"]
        return [j for j in listed if j.get("submitted_by") == "sensor:retrain_on_drift"]

    [job] = wait_for("the retraining job", retraining_jobs)
    def ended():
        current = http.get(f"{up.api}/api/v1/jobs/{job['job_id']}", headers=headers).json()
        return current if current["status"] in ("succeeded", "failed", "cancelled") else None

    done = wait_for("the retraining job to end", ended, timeout_s=400)
    assert done["status"] == "succeeded", done
    versions = {v["version"]: v["stage"] for v in http.get(f"{up.api}/api/v1/models/{model_id}/versions", headers=headers).json()["data"]}
    assert versions.get("1.0.0") == "production" and "staging" in versions.values(), versions
    time.sleep(12)  # two more sensor ticks: the same report launches nothing again
    assert len(retraining_jobs()) == 1
    assert http.get(f"{url}/policy", headers=headers).json()["last_trigger_report_id"] == report["id"]


def test_the_references_batch_request_verbatim_scores_the_demo_customers_on_s3(up, http, monkeypatch):
    """The reference's batch request, as printed there (the demo model's id in place of the
    example's), after make up, run as the banner prints it: a batch job id and an ISO completion
    estimate; the job runs
    on Ray Data in a Dagster run and succeeds; the scored rows and the _SUCCESS manifest are in
    s3://predictions/churn_scores/ on the embedded S3 server."""
    from datetime import datetime

    from mlservice.config.settings import Settings
    from mlservice.config.wiring import build_data_policy
    from resources.data import storage

    headers = bearer(up.token())
    [model] = [m for m in http.get(f"{up.api}/api/v1/models", headers=headers, params={"name_prefix": DEMO_MODEL}).json()["data"]
               if m["name"] == DEMO_MODEL]
    body = {"model_id": model["model_id"], "input_path": "s3://data/customers_to_score.parquet",
            "output_path": "s3://predictions/churn_scores/", "batch_size": 1000}
    # the banner's batch line is that request; run as printed
    [line] = [c.strip() for c in up.log().splitlines() if c.strip().startswith("curl ") and "/predictions/batch" in c]
    assert json.loads(shlex.split(line)[shlex.split(line).index("-d") + 1]) == body
    accepted = _run_curl(line, up.token())
    assert accepted["job_id"].startswith("batch-job-") and accepted["status"] == "submitted", accepted
    assert accepted["estimated_completion"].endswith("Z") and datetime.fromisoformat(accepted["estimated_completion"])

    def ended():
        current = http.get(f"{up.api}/api/v1/predictions/batch/{accepted['job_id']}", headers=headers).json()
        return current if current["status"] in ("succeeded", "failed", "cancelled") else None

    done = wait_for("the batch job to end", ended, timeout_s=400)
    assert done["status"] == "succeeded", done
    assert done["rows_total"] == done["rows_done"] == 10_000 and done["rows_rejected"] == 0, done
    assert done["files"][-1] == "_SUCCESS" and done["dagster_run_url"], done
    assert http.get(f"{up.api}/api/v1/jobs/{accepted['job_id']}", headers=headers).json()["status"] == "succeeded"
    api_env = environ(parts(up)["api"][0])
    for name in ("MLSERVICE_S3_ENDPOINT_URL", "MLSERVICE_S3_TENANT_BUCKETS", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                 "AWS_DEFAULT_REGION"):
        monkeypatch.setenv(name, api_env[name])
    policy = build_data_policy(Settings(data_dir=up.data_dir))
    output = policy.resolve(DEMO_TENANT, "s3://predictions/churn_scores/")
    assert storage.parquet_rows(output, policy) == 10_000
    scored = storage.read_table(policy.resolve(DEMO_TENANT, "s3://predictions/churn_scores/" + done["files"][0]), policy)
    assert {"prediction", "model_version"} <= set(scored.columns) and any(c.startswith("probability_") for c in scored.columns)
    again = http.post(f"{up.api}/api/v1/predictions/batch", json=body, headers=headers)
    assert again.status_code == 409 and again.json()["error"]["code"] == "OUTPUT_EXISTS", again.text


def _big_input(up, name: str, rows: int = 600_000) -> str:
    """A parquet input of ``rows`` demo-like customers in the demo tenant's area; its path."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(5)
    folder = up.data_dir / "tenants" / DEMO_TENANT / "batch-faults"
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({
        "customer_id": [f"cust-{i}" for i in range(rows)], "total_orders": rng.integers(1, 40, rows),
        "days_since_last_order": rng.integers(0, 200, rows), "avg_order_value": rng.uniform(10, 300, rows),
        "support_tickets": rng.integers(0, 8, rows),
    }).to_parquet(folder / f"{name}.parquet")
    return f"batch-faults/{name}.parquet"


def _running_batch(up, http, name: str) -> tuple[dict, dict]:
    """A batch job on a big input, once it has scored some rows: one row a model call, so that it
    scores for about a minute (the actors take whole blocks; the calls are what takes the time)."""
    headers = bearer(up.token())
    [model] = [m for m in http.get(f"{up.api}/api/v1/models", headers=headers, params={"name_prefix": DEMO_MODEL}).json()["data"]
               if m["name"] == DEMO_MODEL]
    body = {"model_id": model["model_id"], "input_path": _big_input(up, name), "output_path": f"batch-faults/out-{name}",
            "batch_size": 1}
    answer = http.post(f"{up.api}/api/v1/predictions/batch", json=body, headers=headers)
    assert answer.status_code == 202, answer.text
    url = f"{up.api}/api/v1/predictions/batch/{answer.json()['job_id']}"

    def scoring():
        current = http.get(url, headers=headers).json()
        # the whole record in the message: pytest shortens a dict's repr, and the error is what tells why (CI)
        assert current["status"] in ("submitted", "queued", "running"), \
            f"the job ended {current['status']}: {current.get('error')!r}\n{current}"
        return current if current["status"] == "running" and current["rows_done"] > 0 else None

    # up to 7 minutes: in CI the deployment lifecycle's replicas and client share the 2 cores (seen: >240 s)
    return wait_for("the batch job to score rows", scoring, timeout_s=420, every_s=1), headers


def _nothing_visible(up, name: str) -> None:
    out = up.data_dir / "tenants" / DEMO_TENANT / "batch-faults" / f"out-{name}"
    left = sorted(str(p.relative_to(out)) for p in out.rglob("*")) if out.exists() else []
    assert not [p for p in left if not p.startswith("_staging")], left  # no part file, no _SUCCESS
    assert not (out / "_staging").exists() or not any((out / "_staging").rglob("*.parquet")), left


def test_a_cancelled_batch_job_ends_cancelled_and_leaves_no_output(up, http):
    job, headers = _running_batch(up, http, "cancel")
    cancelled = http.post(f"{up.api}/api/v1/predictions/batch/{job['job_id']}/cancel", headers=headers)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled", cancelled.text
    from resources.infra.dagster_runs import DagsterRuns

    dagster = DagsterRuns(f"http://127.0.0.1:{up.ports['DAGSTER']}")
    wait_for("the run to stop", lambda: dagster.state(job["dagster_run_id"]).status in ("cancelled", "failed"), timeout_s=120)
    time.sleep(3)  # the run's own clean-up ran as it stopped
    _nothing_visible(up, "cancel")
    again = http.get(f"{up.api}/api/v1/predictions/batch/{job['job_id']}", headers=headers).json()
    assert again["status"] == "cancelled" and again["files"] == [], again


def test_a_batch_job_whose_run_worker_is_killed_ends_failed_and_leaves_no_output(up, http):
    job, headers = _running_batch(up, http, "kill")
    os.kill(run_worker_pid(up, job["dagster_run_id"]), signal.SIGKILL)  # the run's worker, as its event log names it

    def ended():
        current = http.get(f"{up.api}/api/v1/predictions/batch/{job['job_id']}", headers=headers).json()
        return current if current["status"] in ("succeeded", "failed", "cancelled") else None

    done = wait_for("Dagster's run monitoring to fail the run", ended, timeout_s=240)
    assert done["status"] == "failed" and done["files"] == [], done
    _nothing_visible(up, "kill")


def test_a_killed_launcher_leaves_nothing_and_restart_keeps_the_model(platform, http):
    """The launcher killed with SIGKILL: every process gone all the same. Start again on the same data directory: the model, the development
    key, and a deployment that ran before, which comes back by itself (the reconciler applies it
    to the new Ray cluster, whose Serve starts empty)."""
    first = platform["current"]
    old_token = first.token()
    headers = bearer(old_token)
    model_id = http.get(f"{first.api}/api/v1/models", headers=headers, params={"name_prefix": DEMO_MODEL}).json()["data"][0]["model_id"]
    reply = http.post(f"{first.api}/api/v1/deployments", headers=headers, json={
        "model_id": model_id, "version": "1.0.0", "num_replicas": 1, "resources": {"cpu": 0.25}})
    assert reply.status_code == 202, reply.text
    deployment_id = reply.json()["deployment_id"]
    try:
        wait_deployment(http, first, headers, deployment_id, lambda v: v.get("status") == "running")
        # a job running when the platform goes down: hours of single-row mini-batches
        slow = http.post(f"{first.api}/api/v1/training", headers=headers, json={
            "model_name": "running_at_restart", "estimator": "mlp", "training_config": {"epochs": 5000},
            "data_config": {"train_path": "s3://data/train.parquet", "target_column": "churned", "batch_size": 1}})
        assert slow.status_code == 202, slow.text
        slow_path = f"/api/v1/training/{slow.json()['job_id']}"
        # an epoch done: its data is read (killed while the run worker still read from the S3 server, which stops with
        # the rest, the job failed for that, rightly, before the new daemon could say its run worker was gone: CI)
        wait_for("the slow job to train", lambda: (job := http.get(first.api + slow_path, headers=headers).json())["status"] == "running"
                 and job["progress"]["current_epoch"], timeout_s=240, every_s=1)
        # the launcher killed outright (SIGKILL, as the OOM killer would): its watcher stops every part,
        # and their ports are free again for the next start
        os.kill(first.proc.pid, signal.SIGKILL)
        first.proc.wait(timeout=10)
        assert_groups_gone(first, stopped_by_launcher=False)
        assert busy_ports(first.ports) == {}
        platform["current"] = None

        second = platform["current"] = start(first.data_dir, first.data_dir.parent / "up-2.log",
                                             extra_env={"MLSERVICE_DEPLOYMENT_SENSOR_INTERVAL_S": "5"})
        assert "already in production" in second.log()
        for token in (second.token(), old_token):  # the development key survived the restart
            response = http.get(f"{second.api}/api/v1/models", headers=bearer(token), params={"name_prefix": DEMO_MODEL})
            assert response.status_code == 200, response.text
            [model] = response.json()["data"]
            assert (model["stage"], model["current_version"]) == ("production", "1.0.0")
        view = wait_deployment(http, second, headers, deployment_id,
                               lambda v: v.get("serve_status") == "RUNNING" and v["versions"][0]["replicas_running"] == 1)
        assert any(e["kind"] == "reconciler_run" for e in view["events"]), view["events"]
        # the job that was running ended, failed, saying why: its run worker lost (run monitoring of the new daemon)
        # or stopped by the signal (the worker's own record), or a server it used gone first (all get SIGTERM at
        # once), never Dagster's bare wrapper line ("Error occurred while executing op", seen in CI before the
        # reason read the wrapped error's causes)
        ended = wait_for("the job running at the restart to end", lambda: (
            (job := http.get(second.api + slow_path, headers=headers).json())["status"] in ("succeeded", "failed", "cancelled") and job),
            timeout_s=120, every_s=2)
        assert ended["status"] == "failed" and ended["error"], ended
        assert "run worker" in ended["error"] or any(
            gone in ended["error"] for gone in ("Connection refused", "connect", "Max retries exceeded")), ended["error"]
        served = http.post(f"{second.api}/api/v1/predictions", headers=headers, json={
            "model_id": model_id, "deployment_id": deployment_id,
            "features": {"total_orders": 3, "days_since_last_order": 9, "avg_order_value": 20.0, "support_tickets": 0}})
        assert served.status_code == 200 and served.json()["served_by"]["path"] == "deployment", served.text
    finally:  # removed whatever happened: the modules after this one share the platform and its 2 CPUs (CI: a replica left
        # behind by a failed assertion held a quarter CPU, and every 2-worker fit after it waited for CPUs that never came)
        if (current := platform["current"]) is not None:
            assert http.delete(f"{current.api}/api/v1/deployments/{deployment_id}", headers=headers).status_code == 202
            wait_deployment(http, current, headers, deployment_id, lambda v: v.get("status_code") == 404)
    # the second instance stays up for the modules after this one; the session fixture stops it
