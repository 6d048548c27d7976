"""Oversized training and tuning requests (resources/jobs/limits.py) are 400 INVALID_REQUEST naming the
bound, before anything is stored or launched (the test app's Ray is unreachable: a request within
the bounds would get as far as 503 RAY_UNAVAILABLE)."""

from __future__ import annotations

import pytest

from resources.jobs import limits
from tests.utils.api import error_envelope


def _training(train_file: str, **changes) -> dict:
    body = {"model_name": "big", "estimator": "random_forest", "hyperparameters": {"n_estimators": 10},
            "data_config": {"train_path": train_file, "target_column": "churned"}, "training_config": {"epochs": 5}}
    for key, value in changes.items():
        section, _, field = key.partition(".")
        if field:
            body[section] = {**body[section], field: value}
        else:
            body[section] = value
    return body


def _refused(client, headers, path: str, body: dict, fragment: str) -> None:
    error = error_envelope(client.post(path, json=body, headers=headers), 400, "INVALID_REQUEST")
    assert fragment in error["message"] + str(error["details"]), error
    assert client.get("/api/v1/jobs", headers=headers).json()["count"] == 0


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"hyperparameters": {"n_estimators": 10**7}}, "n_estimators=10000000 is above the bound 1000"),
        ({"hyperparameters": {"n_estimators": 10, "max_depth": None}}, "grow without bound"),
        ({"estimator": "mlp", "hyperparameters": {"hidden_layer_sizes": [1024] * 8}}, "8192 hidden units"),
        ({"estimator": "hist_gradient_boosting", "hyperparameters": {"max_iter": 10**6}}, "above the bound 1000"),
        ({"framework": "pytorch", "estimator": None, "hyperparameters": {"hidden_sizes": [10**6]}}, "the bound is 1024"),
        ({"training_config.epochs": limits.MAX_EPOCHS + 1}, f"less than or equal to {limits.MAX_EPOCHS}"),
        ({"training_config.num_workers": limits.MAX_WORKERS + 1}, f"less than or equal to {limits.MAX_WORKERS}"),
        ({"data_config.batch_size": limits.MAX_BATCH_SIZE + 1}, f"less than or equal to {limits.MAX_BATCH_SIZE}"),
    ],
)
def test_oversized_training_is_400_naming_the_bound(client, headers, train_file, changes, fragment):
    _refused(client, headers, "/api/v1/training", _training(train_file, **changes), fragment)


def test_a_training_request_at_the_bounds_gets_past_validation(client, headers, train_file):
    body = _training(train_file, **{"hyperparameters": {"n_estimators": 1000, "max_depth": 32},
                                    "training_config.epochs": limits.MAX_EPOCHS})
    error_envelope(client.post("/api/v1/training", json=body, headers=headers), 503, "RAY_UNAVAILABLE")


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"search_space": {"n_estimators": {"type": "randint", "min": 10, "max": 10**6}}}, "above the bound 1000"),
        ({"search_space": {"n_estimators": {"type": "choice", "values": [10, 10**5]}}}, "above the bound 1000"),
        ({"search_space": {"max_depth": {"type": "uniform", "min": 2, "max": 1e9}}}, "above the bound 32"),
        ({"search_space": {"epochs": {"type": "randint", "min": 1, "max": 10**6}}}, f"less than or equal to {limits.MAX_EPOCHS}"),
        ({"num_trials": limits.MAX_TRIALS + 1}, f"less than or equal to {limits.MAX_TRIALS}"),
        ({"max_concurrent_trials": limits.MAX_CONCURRENT_TRIALS + 1}, f"less than or equal to {limits.MAX_CONCURRENT_TRIALS}"),
    ],
)
def test_oversized_tuning_is_400_naming_the_bound(client, headers, train_file, changes, fragment):
    body = {"model_name": "big", "estimator": "random_forest", "model_type": "classification",
            "data_config": {"train_path": train_file, "target_column": "churned"},
            "search_space": {"n_estimators": {"type": "choice", "values": [5, 10]}}, "num_trials": 4,
            "algorithm": "random", **changes}
    _refused(client, headers, "/api/v1/tuning", body, fragment)
