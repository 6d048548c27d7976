"""Training and tuning end to end: POST to the running API, Dagster (webserver + daemon) runs the
assets, the fit runs on the Ray head, progress and models land in MLflow, GET follows it all. On
the integration tier's shared platform (``conftest.py``), in a tenant of its own.

Real data: scikit-learn's bundled breast_cancer set, written as parquet into the tenant's area.
"""

from __future__ import annotations

import time

import httpx
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split

from tests.integration.conftest import DEMO_TENANT
from tests.utils.datasets import breast_cancer
from tests.utils.platform import follow_job, integration_marks, tenant_client

TENANT = "bc-lab"
pytestmark = integration_marks(timeout_s=900)


def _split_breast_cancer():
    frame = breast_cancer(snake_case=True)
    return train_test_split(frame, test_size=0.25, random_state=3, stratify=frame["target"])


@pytest.fixture(scope="module")
def bc_data(platform):
    """The breast cancer split in the tenant's area of the integration tier's shared platform."""
    folder = platform["current"].data_dir / "tenants" / TENANT / "bc"
    folder.mkdir(parents=True, exist_ok=True)
    train, val = _split_breast_cancer()
    train.to_parquet(folder / "train.parquet", index=False)
    val.to_parquet(folder / "val.parquet", index=False)
    return folder


@pytest.fixture(scope="module")
def api(platform, bc_data):
    with tenant_client(platform["current"], TENANT) as client:
        yield client


def test_training_reaches_plain_sklearn_accuracy_and_registers_a_version(api):
    hyperparameters = {"n_estimators": 60, "max_depth": 6, "min_samples_split": 4, "random_state": 0}
    body = {
        "model_name": "bc_forest", "framework": "sklearn", "estimator": "random_forest",
        "data_config": {"train_path": "bc/train.parquet", "validation_path": "bc/val.parquet", "target_column": "target"},
        "training_config": {"num_workers": 2, "epochs": 1},
        "hyperparameters": hyperparameters,
    }
    accepted = api.post("/api/v1/training", json=body, headers={"Idempotency-Key": "bc-forest-1"})
    assert accepted.status_code == 202, accepted.text
    job = accepted.json()
    assert job["status"] == "submitted" and job["model_name"] == "bc_forest"
    again = api.post("/api/v1/training", json=body, headers={"Idempotency-Key": "bc-forest-1"})
    assert again.json()["job_id"] == job["job_id"]  # same key, same body: same job, one run

    final = follow_job(api, f"/api/v1/training/{job['job_id']}")
    assert final["status"] == "succeeded", final
    train, val = _split_breast_cancer()
    features = [c for c in train.columns if c != "target"]
    plain = RandomForestClassifier(**hyperparameters).fit(train[features], train["target"]).score(val[features], val["target"])
    assert abs(final["metrics"]["val_accuracy"] - plain) <= 0.02, (final["metrics"], plain)
    assert final["model_version"] == "1.0.0" and final["resources"]["workers"] == 2
    assert final["dagster_run_url"].endswith(final["dagster_run_id"])

    generic = api.get(f"/api/v1/jobs/{job['job_id']}").json()
    assert (generic["kind"], generic["status"], generic["dagster_run_id"]) == ("training", "succeeded", final["dagster_run_id"])
    listed = api.get("/api/v1/jobs", params={"kind": "training"}).json()["data"]
    assert [j["job_id"] for j in listed].count(job["job_id"]) == 1
    versions = api.get(f"/api/v1/models/{final['model_id']}/versions").json()["data"]
    assert [(v["version"], v["stage"]) for v in versions] == [("1.0.0", "development")]


def test_the_demo_training_files_on_the_embedded_s3_server_train_a_model(api, up):
    """After `make up` the demo tenant trains on s3://data/train.parquet as the README's request
    says (the run worker reads the embedded S3 server); the bucket is granted to the demo tenant
    alone."""
    body = {
        "model_name": "churn_from_s3_files", "estimator": "random_forest",  # not the README's name: its test trains that one
        "data_config": {"train_path": "s3://data/train.parquet", "validation_path": "s3://data/val.parquet",
                        "target_column": "churned"},
        "hyperparameters": {"n_estimators": 30, "max_depth": 6},
    }
    assert api.post("/api/v1/training", json=body).json()["error"]["code"] == "INVALID_REQUEST"  # bc-lab: no grant
    with tenant_client(up, "acme-corp") as demo:
        accepted = demo.post("/api/v1/training", json=body)
        assert accepted.status_code == 202, accepted.text
        final = follow_job(demo, f"/api/v1/training/{accepted.json()['job_id']}")
    assert final["status"] == "succeeded", final
    assert final["model_version"] == "1.0.0" and final["metrics"]["val_accuracy"] > 0.6, final["metrics"]


def test_iterative_training_shows_live_progress(api):
    body = {
        "model_name": "bc_sgd", "estimator": "sgd",
        "data_config": {"train_path": "bc/train.parquet", "target_column": "target", "batch_size": 8},
        "training_config": {"epochs": 150, "learning_rate": 0.01, "early_stopping": False},
        "hyperparameters": {"loss": "log_loss"},
    }
    job = api.post("/api/v1/training", json=body).json()
    seen: list = []
    final = follow_job(api, f"/api/v1/training/{job['job_id']}", seen=seen)
    assert final["status"] == "succeeded", final
    running = [s for s in seen if s["status"] == "running" and s["progress"]["current_epoch"]]
    assert running, "no live progress was seen while the job ran"
    sample = running[len(running) // 2]
    assert 1 <= sample["progress"]["current_epoch"] <= 150 and sample["progress"]["total_epochs"] == 150
    assert sample["progress"]["current_loss"] is not None and "val_accuracy" in sample["metrics"]
    assert final["progress"]["current_epoch"] == 150 and final["metrics"]["val_accuracy"] > 0.85


def test_a_failed_job_says_why(api):
    body = {"model_name": "bc_broken", "data_config": {"train_path": "bc/train.parquet", "target_column": "churned"}}
    job = api.post("/api/v1/training", json=body).json()
    final = follow_job(api, f"/api/v1/training/{job['job_id']}")
    assert final["status"] == "failed"
    assert "target column 'churned' not found" in final["error"]
    assert api.get(f"/api/v1/jobs/{job['job_id']}").json()["error"] == final["error"]


def test_tuning_runs_trials_and_registers_the_best(api):
    body = {
        "model_name": "bc_forest",  # data, estimator and settings come from its training job
        "search_space": {"n_estimators": {"type": "choice", "values": [10, 40]},
                         "max_depth": {"type": "randint", "min": 2, "max": 6}},
        "objective_metric": "val_accuracy", "mode": "max", "num_trials": 4, "algorithm": "bayesian",
        "max_concurrent_trials": 2,
    }
    accepted = api.post("/api/v1/tuning", json=body)
    assert accepted.status_code == 202, accepted.text
    final = follow_job(api, f"/api/v1/tuning/{accepted.json()['job_id']}")
    assert final["status"] == "succeeded", final
    assert final["trials_done"] == final["trials_total"] == 4 and len(final["trials"]) == 4
    metrics = [t["metric"] for t in final["trials"] if t["metric"] is not None]
    assert final["best_trial"]["metric"] == max(metrics)
    assert final["best_trial"]["config"]["n_estimators"] in (10, 40)
    assert 2 <= final["best_trial"]["config"]["max_depth"] <= 6
    assert final["model_version"] == "1.1.0"  # after the training job's 1.0.0


def test_cancel_ends_a_running_job(api):
    body = {
        "model_name": "bc_long", "estimator": "mlp",
        "data_config": {"train_path": "bc/train.parquet", "target_column": "target", "batch_size": 4},
        "training_config": {"epochs": 5000},
    }
    job = api.post("/api/v1/training", json=body).json()
    time.sleep(3)
    cancelled = api.post(f"/api/v1/training/{job['job_id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    again = api.post(f"/api/v1/training/{job['job_id']}/cancel")
    assert again.status_code == 409 and again.json()["error"]["code"] == "JOB_ALREADY_FINISHED"


def test_other_tenants_cannot_see_jobs(api, up):
    job_id = api.get("/api/v1/jobs").json()["data"][0]["job_id"]
    with tenant_client(up, "someone-else") as other:
        assert other.get(f"/api/v1/jobs/{job_id}").status_code == 404
        assert other.get(f"/api/v1/training/{job_id}").json()["error"]["code"] == "JOB_NOT_FOUND"
        assert other.get("/api/v1/jobs").json()["count"] == 0
        assert other.post(f"/api/v1/training/{job_id}/cancel").status_code == 404


def test_use_gpu_on_a_cpu_cluster_is_400(api):
    body = {
        "model_name": "bc_gpu", "framework": "pytorch",
        "data_config": {"train_path": "bc/train.parquet", "target_column": "target"},
        "training_config": {"use_gpu": True, "num_workers": 1},
    }
    response = api.post("/api/v1/training", json=body)
    assert response.status_code == 400, response.text
    assert "no GPU" in response.json()["error"]["message"]


def _launched_from_the_ui(up, client: httpx.Client, job_name: str, run_config: dict, kind: str) -> dict:
    """GraphQL launchRun of ``job_name`` with only the launchpad's config (no context.job_id, no
    tags); the job the run registered for its tenant, as the API lists it, followed to its end."""
    from resources.infra.dagster_runs import DagsterRuns

    run_id = DagsterRuns(f"http://127.0.0.1:{up.ports['DAGSTER']}").launch(job_name, run_config, tags={})
    deadline, job = time.monotonic() + 120, None
    while job is None and time.monotonic() < deadline:
        listed = client.get("/api/v1/jobs", params={"kind": kind, "limit": 50}).json()["data"]
        job = next((j for j in listed if j["dagster_run_id"] == run_id), None)
        time.sleep(1)
    assert job is not None, f"run {run_id} never showed as a {kind} job"
    final = follow_job(client, f"/api/v1/jobs/{job['job_id']}")
    assert final["status"] == "succeeded" and final["submitted_by"] == "dagster-ui", final
    return final


def test_runs_launched_as_the_dagster_ui_does_are_jobs_of_the_tenant(api, up, bc_data):
    """The launchpad's way, for each kind a data scientist launches there: training, tuning, batch
    scoring (of the version the training registered) and feature materialization (the demo
    tenant's views). Each run registers itself as a job of the tenant, which the API lists and
    follows to its end, with what it produced."""
    from resources.features.materialization_spec import FEATURE_MATERIALIZATION_JOB
    from resources.jobs.specs import BATCH_SCORING_JOB, TRAINING_JOB, TUNING_JOB

    context = {"tenant_id": TENANT}
    data = {"train_path": "bc/train.parquet", "validation_path": "bc/val.parquet", "target_column": "target"}
    trainer = {"estimator": "logistic_regression", "hyperparameters": {"max_iter": 500}}
    trained = _launched_from_the_ui(up, api, TRAINING_JOB, {"ops": {
        "training_set": {"config": {"context": context, "data": data}},
        "trained_model": {"config": {"context": context, "model_name": "bc_from_the_ui", "trainer": trainer}},
    }}, "training")
    assert trained["result"]["model_id"] and trained["result"]["version"] == "1.0.0", trained["result"]

    tuned = _launched_from_the_ui(up, api, TUNING_JOB, {"ops": {
        "training_set": {"config": {"context": context, "data": data}},
        "tuned_model": {"config": {"context": context, "model_name": "bc_from_the_ui", "trainer": trainer, "num_trials": 2,
                                   "search_space": {"C": {"type": "loguniform", "min": 0.01, "max": 10}}}},
    }}, "tuning")
    assert tuned["result"]["version"] == "1.1.0" and tuned["result"]["trials_done"] == 2, tuned["result"]
    tuning_view = api.get(f"/api/v1/tuning/{tuned['job_id']}")  # the kind's own view of a job the API did not submit
    assert tuning_view.status_code == 200 and tuning_view.json()["model_version"] == "1.1.0", tuning_view.text

    _, val = _split_breast_cancer()
    val.drop(columns=["target"]).to_parquet(bc_data / "to_score.parquet", index=False)
    scored = _launched_from_the_ui(up, api, BATCH_SCORING_JOB, {"ops": {"batch_predictions": {"config": {
        "context": context, "model_id": trained["result"]["model_id"], "version": "1.0.0",
        "input_path": "bc/to_score.parquet", "output_path": "bc/scored_from_the_ui"}}}}, "batch_prediction")
    assert scored["result"]["rows_done"] == len(val) and scored["result"]["files"], scored["result"]
    batch_view = api.get(f"/api/v1/predictions/batch/{scored['job_id']}")
    assert batch_view.status_code == 200 and batch_view.json()["rows_done"] == len(val), batch_view.text

    with tenant_client(up, DEMO_TENANT) as demo:
        materialized = _launched_from_the_ui(up, demo, FEATURE_MATERIALIZATION_JOB, {"ops": {
            "online_features": {"config": {"context": {"tenant_id": DEMO_TENANT}}}}}, "materialization")
    assert set(materialized["result"]) == {"customer_features", "order_features"}, materialized
    assert all(view["end"] for view in materialized["result"].values()), materialized["result"]
