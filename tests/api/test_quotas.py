"""Per-tenant quotas (resources/tenants/quotas.py), each tried as the attack: the N+1th model, version and
ensemble of a tenant is 409 QUOTA_EXCEEDED and nothing is stored; the N+1th unfinished job is 429
JOB_LIMIT_REACHED with Retry-After, nothing is stored or launched, and a job that ended frees its
slot. Other tenants keep their own quotas. Dagster and Ray are replaced by fakes on the app's job
service (as the API sees them: a launch returns a run id, a run has a status)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from resources.infra.state_db import utcnow
from resources.jobs.records import jobs as jobs_table
from serving_api.main import create_app
from tests.conftest import make_settings
from tests.utils.api import error_envelope, register_model
from tests.utils.datasets import write_tiny_training_file
from tests.utils.fakes import FakeRay, FakeRuns
from tests.utils.mlflow_models import log_sklearn_model
from tests.utils.tokens import auth, make_token

SMALL = {"models": 2, "versions_per_model": 2, "ensembles": 1, "concurrent_jobs": 2}
TENANTS = ("q-models", "q-versions", "q-ensembles", "q-jobs", "q-room")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("quota-data")
    (data_dir / "mlflow").mkdir()
    settings = make_settings(data_dir, quota_overrides={t: SMALL for t in TENANTS}, max_run_minutes=0.5,
                             max_run_minutes_overrides={"q-short": 0.25, "q-long": 600})
    app = create_app(settings)
    with TestClient(app) as client:
        service = app.state.job_service
        service.runs, service.ray = FakeRuns(), FakeRay()
        yield {"client": client, "settings": settings, "runs": service.runs, "jobs": service.jobs}


def _refused(response, status: int, code: str, quota: str, limit: int) -> dict:
    error = error_envelope(response, status, code)
    assert error["details"]["quota"] == quota and error["details"]["limit"] == limit
    assert quota in error["message"] and str(limit) in error["message"]
    return error


def _model_with_version(world, tenant: str, headers: dict, name: str) -> str:
    return register_model(world["client"], headers, log_sklearn_model(world["settings"], tenant), name)


def test_the_model_past_the_quota_is_409_and_nothing_is_stored(world):
    client, headers = world["client"], auth(make_token("q-models"))
    for name in ("first", "second"):
        assert client.post("/api/v1/models", json={"name": name}, headers=headers).status_code == 201
    _refused(client.post("/api/v1/models", json={"name": "third"}, headers=headers), 409, "QUOTA_EXCEEDED", "models", 2)
    listed = client.get("/api/v1/models", headers=headers).json()
    assert sorted(m["name"] for m in listed["data"]) == ["first", "second"]
    other = auth(make_token("q-other"))  # the default quota (100)
    for name in ("first", "second", "third"):
        assert client.post("/api/v1/models", json={"name": name}, headers=other).status_code == 201


def test_the_version_past_the_quota_is_409_and_nothing_is_stored(world):
    client, headers = world["client"], auth(make_token("q-versions"))
    model_id = _model_with_version(world, "q-versions", headers, "versioned")  # 1.0.0
    run_id = log_sklearn_model(world["settings"], "q-versions")
    url = f"/api/v1/models/{model_id}/versions"
    assert client.post(url, json={"source": {"run_id": run_id}}, headers=headers).json()["version"] == "1.1.0"
    refused = client.post(url, json={"source": {"run_id": run_id}}, headers=headers)
    _refused(refused, 409, "QUOTA_EXCEEDED", "versions_per_model", 2)
    assert [v["version"] for v in client.get(url, headers=headers).json()["data"]] == ["1.1.0", "1.0.0"]


def test_the_ensemble_past_the_quota_is_409_and_nothing_is_stored(world):
    client = world["client"]
    for tenant, allowed in (("q-ensembles", 1), ("q-ensembles-other", 2)):
        headers = auth(make_token(tenant))
        member = {"model_id": _model_with_version(world, tenant, headers, "member"), "weight": 1}
        for name in ("e1", "e2")[:allowed]:
            created = client.post("/api/v1/ensembles", json={"name": name, "models": [member]}, headers=headers)
            assert created.status_code == 201, created.text
    headers = auth(make_token("q-ensembles"))
    refused = client.post("/api/v1/ensembles", json={"name": "e2", "models": [member]}, headers=headers)
    _refused(refused, 409, "QUOTA_EXCEEDED", "ensembles", 1)
    assert [e["name"] for e in client.get("/api/v1/ensembles", headers=headers).json()["data"]] == ["e1"]


def _training(train_path: str) -> dict:
    return {"model_name": "churn", "estimator": "random_forest", "hyperparameters": {"n_estimators": 5},
            "data_config": {"train_path": train_path, "target_column": "churned"}}


def _tuning(train_path: str) -> dict:
    return {"model_name": "churn", "estimator": "random_forest", "model_type": "classification",
            "data_config": {"train_path": train_path, "target_column": "churned"},
            "search_space": {"n_estimators": {"type": "choice", "values": [5, 10]}}, "num_trials": 2,
            "algorithm": "random"}


def test_a_job_whose_model_or_version_would_pass_the_quota_is_409_before_it_runs(world):
    """Not hours of fitting refused at registration: the submit is refused, nothing stored or launched."""
    client, runs, headers = world["client"], world["runs"], auth(make_token("q-room"))
    path, launched = write_tiny_training_file(world["settings"], "q-room"), len(runs.tags)
    model_id = _model_with_version(world, "q-room", headers, "full")  # 1.0.0
    run_id = log_sklearn_model(world["settings"], "q-room")
    assert client.post(f"/api/v1/models/{model_id}/versions", json={"source": {"run_id": run_id}}, headers=headers).status_code == 201
    assert client.post("/api/v1/models", json={"name": "empty"}, headers=headers).status_code == 201
    for name, quota in (("full", "versions_per_model"), ("new_model", "models")):
        _refused(client.post("/api/v1/training", json={**_training(path), "model_name": name}, headers=headers),
                 409, "QUOTA_EXCEEDED", quota, 2)
        _refused(client.post("/api/v1/tuning", json={**_tuning(path), "model_name": name}, headers=headers),
                 409, "QUOTA_EXCEEDED", quota, 2)
    assert client.post("/api/v1/training", json={**_training(path), "model_name": "empty"}, headers=headers).status_code == 202
    assert client.get("/api/v1/jobs", headers=headers).json()["count"] == 1 and len(runs.tags) == launched + 1


def test_unfinished_jobs_past_the_quota_are_429_and_an_ended_job_frees_its_slot(world):
    client, runs, settings = world["client"], world["runs"], world["settings"]
    path = write_tiny_training_file(settings, "q-jobs")
    write_tiny_training_file(settings, "q-jobs-other")
    headers, launched = auth(make_token("q-jobs")), len(runs.tags)
    first = client.post("/api/v1/training", json=_training(path), headers={**headers, "Idempotency-Key": "k1"})
    second = client.post("/api/v1/tuning", json=_tuning(path), headers=headers)
    assert first.status_code == second.status_code == 202, (first.text, second.text)

    refused = client.post("/api/v1/tuning", json=_tuning(path), headers=headers)
    _refused(refused, 429, "JOB_LIMIT_REACHED", "concurrent_jobs", 2)
    assert int(refused.headers["Retry-After"]) > 0
    assert client.get("/api/v1/jobs", headers=headers).json()["count"] == 2 and len(runs.tags) == launched + 2
    # the same request again under its Idempotency-Key is the same job, not a new one
    again = client.post("/api/v1/training", json=_training(path), headers={**headers, "Idempotency-Key": "k1"})
    assert again.status_code == 202 and again.json()["job_id"] == first.json()["job_id"]
    # another tenant has its own slots
    other = client.post("/api/v1/training", json=_training(path), headers=auth(make_token("q-jobs-other")))
    assert other.status_code == 202, other.text

    # the first run ends; its record stays unfinished in the table until something refreshes it
    first_record = world["jobs"].get("q-jobs", first.json()["job_id"])
    assert first_record.status == "running"
    runs.status[first_record.dagster_run_id] = "SUCCESS"
    third = client.post("/api/v1/tuning", json=_tuning(path), headers=headers)
    assert third.status_code == 202, third.text
    assert world["jobs"].get("q-jobs", first.json()["job_id"]).status == "succeeded"
    # a cancelled job frees its slot too
    assert client.post("/api/v1/tuning", json=_tuning(path), headers=headers).status_code == 429
    assert client.post(f"/api/v1/tuning/{second.json()['job_id']}/cancel", headers=headers).status_code == 200
    assert client.post("/api/v1/training", json=_training(path), headers=headers).status_code == 202
    # every run the API launched carries Dagster's maximum runtime (MLSERVICE_MAX_RUN_MINUTES=0.5)
    assert {tags["dagster/max_runtime"] for tags in runs.tags.values()} == {"30"}


def test_a_tenants_runs_carry_its_own_lower_maximum_runtime(world):
    """MLSERVICE_MAX_RUN_MINUTES_OVERRIDES lowers one tenant's bound; a higher value is held to the platform's."""
    client, runs = world["client"], world["runs"]
    for tenant, expected in (("q-short", "15"), ("q-long", "30")):
        path = write_tiny_training_file(world["settings"], tenant)
        accepted = client.post("/api/v1/training", json=_training(path), headers=auth(make_token(tenant)))
        assert accepted.status_code == 202, accepted.text
        run_id = world["jobs"].get(tenant, accepted.json()["job_id"]).dagster_run_id
        assert runs.tags[run_id]["dagster/max_runtime"] == expected


def test_settings_without_effect_on_the_estimator_are_reported_not_refused(world):
    """A one-fit estimator given per-epoch settings, and the reference's tuning space (learning_rate
    beside a forest's hyperparameters) on a forest: accepted, and the status says what had no effect."""
    client = world["client"]
    path = write_tiny_training_file(world["settings"], "q-long")
    body = {**_training(path), "training_config": {"epochs": 50, "early_stopping": True}}
    accepted = client.post("/api/v1/training", json=body, headers=auth(make_token("q-long")))
    assert accepted.status_code == 202, accepted.text
    status = client.get(f"/api/v1/training/{accepted.json()['job_id']}", headers=auth(make_token("q-long"))).json()
    assert (status["progress"]["total_epochs"], status["progress"]["iterative"]) == (1, False)
    assert set(status["ignored_settings"]) == {"training_config.epochs", "training_config.early_stopping"}
    # resources are what Ray allocated: unknown until the run's fit got them, then the run's figures
    assert (status["resources"]["workers"], status["resources"]["gpus"]) == (None, None)
    world["jobs"].record_outcome(accepted.json()["job_id"], result={"resources": {"workers": 2, "gpus": 0}})
    status = client.get(f"/api/v1/training/{accepted.json()['job_id']}", headers=auth(make_token("q-long"))).json()
    assert (status["resources"]["workers"], status["resources"]["gpus"]) == (2, 0)
    # tuning as the reference writes it (no data_config: the last training job's; learning_rate beside the
    # forest's hyperparameters) is accepted, and learning_rate reported as having no effect on a forest
    tuning = {"model_name": "churn", "search_space": {
        "learning_rate": {"type": "loguniform", "min": 0.001, "max": 0.1},
        "n_estimators": {"type": "choice", "values": [50, 100, 200]},
        "max_depth": {"type": "randint", "min": 3, "max": 10},
        "min_samples_split": {"type": "choice", "values": [2, 5, 10]}},
        "objective_metric": "val_accuracy", "mode": "max", "num_trials": 4, "algorithm": "bayesian"}
    accepted = client.post("/api/v1/tuning", json=tuning, headers=auth(make_token("q-long")))
    assert accepted.status_code == 202, accepted.text
    status = client.get(f"/api/v1/tuning/{accepted.json()['job_id']}", headers=auth(make_token("q-long"))).json()
    assert list(status["ignored_settings"]) == ["search_space.learning_rate"], status


def test_a_job_record_that_never_got_a_run_stops_holding_a_slot(world):
    client, jobs, settings = world["client"], world["jobs"], world["settings"]
    tenant = "q-jobs-stale"
    path, headers = write_tiny_training_file(settings, tenant), auth(make_token(tenant))
    for _ in range(4):  # the API died between storing these and launching their runs, an hour ago
        record, _ = jobs.create(tenant, kind="training", request={}, submitted_by="crashed")
        with jobs.state.begin() as conn:  # backdated, as no writer of the platform would
            conn.execute(jobs_table.update().where(jobs_table.c.job_id == record.job_id).values(created_at=utcnow() - timedelta(hours=1)))
    submits = [client.post("/api/v1/training", json=_training(path), headers=headers) for _ in range(5)]
    assert [r.status_code for r in submits] == [202, 202, 202, 202, 429]  # the default quota: 4 at once
