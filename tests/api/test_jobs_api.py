"""Training, tuning and jobs routes without a running cluster: validation answers 400 before
anything is stored, an unreachable Ray answers 503 RAY_UNAVAILABLE, unknown jobs 404."""

from __future__ import annotations

import pytest

from tests.utils.api import error_envelope

VALID = {
    "model_name": "churn_v2",
    "framework": "sklearn",
    "estimator": "random_forest",
    "data_config": {"train_path": "data/train.parquet", "target_column": "churned"},
    "training_config": {"num_workers": 1, "epochs": 5},
    "hyperparameters": {"n_estimators": 10},
}


def _with(**changes) -> dict:
    body = {k: (dict(v) if isinstance(v, dict) else v) for k, v in VALID.items()}
    for dotted, value in changes.items():
        target = body
        *parents, leaf = dotted.split(".")
        for part in parents:
            target = target[part]
        target[leaf] = value
    return body


@pytest.mark.parametrize(
    "changes",
    [
        {"framework": "tensorflow"},
        {"estimator": "quantum_forest"},
        {"hyperparameters": {"n_estimators": 10, "not_a_param": 1}},
        {"training_config.num_workers": 0},
        {"training_config.epochs": 0},
        {"data_config.train_path": "../other-tenant/train.parquet"},
        {"data_config.train_path": "/etc/passwd"},
        {"data_config.train_path": "file:///etc/passwd"},
        {"data_config.train_path": "s3://not-allowed/train.parquet"},
        {"data_config.train_path": "http://127.0.0.1/train.parquet"},
        {"data_config.train_path": "data/missing.parquet"},
        {"model_name": "bad name"},
        {"estimator": "logistic_regression", "model_type": "regression"},
    ],
)
def test_invalid_training_requests_are_400_and_store_nothing(client, headers, train_file, changes):
    error = error_envelope(client.post("/api/v1/training", json=_with(**changes), headers=headers), 400, "INVALID_REQUEST")
    assert error["details"]
    assert client.get("/api/v1/jobs", headers=headers).json()["count"] == 0


def test_unreachable_ray_is_503_promptly_and_stores_nothing(client, headers, train_file):
    error = error_envelope(client.post("/api/v1/training", json=VALID, headers=headers), 503, "RAY_UNAVAILABLE")
    assert "Ray" in error["message"]
    assert client.get("/api/v1/training", headers=headers).json() == {"data": [], "count": 0, "next_cursor": None}


def test_use_gpu_needs_a_reachable_cluster_to_check(client, headers, train_file):
    body = _with(**{"training_config.use_gpu": True})
    error_envelope(client.post("/api/v1/training", json=body, headers=headers), 503, "RAY_UNAVAILABLE")


@pytest.mark.parametrize(
    "changes",
    [
        {"search_space": {}},
        {"search_space": {"n_estimators": {"type": "gaussian", "mu": 1}}},
        {"search_space": {"n_estimators": {"type": "choice", "values": []}}},
        {"search_space": {"max_depth": {"type": "randint", "min": 9, "max": 3}}},
        {"search_space": {"x": {"type": "loguniform", "min": 0, "max": 1}}},
        {"algorithm": "grid", "search_space": {"x": {"type": "uniform", "min": 0, "max": 1}}},
        {"objective_metric": "val_r2"},
        {"num_trials": 0},
        {"max_concurrent_trials": 0},
    ],
)
def test_invalid_tuning_requests_are_400(client, headers, train_file, changes):
    body = {
        "model_name": "churn_v2", "estimator": "random_forest", "model_type": "classification",
        "data_config": {"train_path": train_file, "target_column": "churned"},
        "search_space": {"n_estimators": {"type": "choice", "values": [5, 10]}},
        "objective_metric": "val_accuracy", "mode": "max", "num_trials": 2, "algorithm": "random",
    }
    body.update(changes)
    error_envelope(client.post("/api/v1/tuning", json=body, headers=headers), 400, "INVALID_REQUEST")


def test_tuning_without_data_needs_an_earlier_training_job(client, headers):
    body = {"model_name": "never_trained", "search_space": {"n_estimators": {"type": "choice", "values": [5, 10]}}}
    error = error_envelope(client.post("/api/v1/tuning", json=body, headers=headers), 400, "INVALID_REQUEST")
    assert "data_config" in error["message"]


@pytest.mark.parametrize("path", ["/api/v1/training/train-job-nope", "/api/v1/tuning/tune-job-nope", "/api/v1/jobs/x"])
def test_unknown_jobs_are_404(client, headers, path):
    error_envelope(client.get(path, headers=headers), 404, "JOB_NOT_FOUND")


def test_job_routes_need_job_scopes(client, tenant):
    from tests.utils.tokens import auth, make_token

    models_only = auth(make_token(tenant, scopes=("models:read", "models:write")))
    error_envelope(client.get("/api/v1/jobs", headers=models_only), 403, "FORBIDDEN")
    error_envelope(client.post("/api/v1/training", json=VALID, headers=models_only), 403, "FORBIDDEN")
    reader = auth(make_token(tenant, scopes=("jobs:read",)))
    error_envelope(client.post("/api/v1/tuning", json={}, headers=reader), 403, "FORBIDDEN")
