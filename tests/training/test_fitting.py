"""Fitting scikit-learn and PyTorch trainers in-process and on a real local Ray cluster."""

from __future__ import annotations

import math
import pickle
import types

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier

from assets.training.fitting import GpuUnavailable, fit_on_ray, fit_sklearn
from assets.training.outcome import evaluate
from assets.training.progress import MlflowProgress, NullProgress
from assets.training.training_data import TrainingData
from resources.jobs.estimators import boosting_schedule, build_estimator, validate_trainer
from resources.jobs.specs import TrainerSpec
from tests.utils import datasets

EPOCH_KEYS = {"train_loss", "val_loss", "train_accuracy", "val_accuracy", "current_loss", "best_loss", "learning_rate"}


@pytest.fixture(scope="module")
def cancer() -> TrainingData:
    return datasets.training_data(datasets.breast_cancer(), "classification")


@pytest.fixture(scope="module")
def diabetes() -> TrainingData:
    return datasets.training_data(datasets.diabetes(), "regression")


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory):
    import mlflow
    from mlflow.tracking import MlflowClient

    previous = mlflow.get_tracking_uri()
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    # artifacts under tmp too: a SQLite store's default artifact root is ./mlruns in the cwd
    MlflowClient(uri).create_experiment("fitting-tests", artifact_location=(root / "artifacts").as_uri())
    mlflow.set_tracking_uri(uri)
    yield uri
    mlflow.set_tracking_uri(previous)


def _new_run(tracking_uri: str) -> str:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    return client.create_run(client.get_experiment_by_name("fitting-tests").experiment_id).info.run_id


def _steps(tracking_uri: str, run_id: str, key: str) -> list[int]:
    from mlflow.tracking import MlflowClient

    return sorted(m.step for m in MlflowClient(tracking_uri).get_metric_history(run_id, key))


# ---- scikit-learn, in process -------------------------------------------------------------------

def test_random_forest_matches_plain_sklearn(cancer):
    hyperparameters = {"n_estimators": 60, "max_depth": 6, "random_state": 3}
    outcome = fit_sklearn(TrainerSpec(estimator="random_forest", hyperparameters=hyperparameters), cancer)
    plain = RandomForestClassifier(**hyperparameters).fit(cancer.x_train, cancer.y_train)
    assert outcome.epochs_run == 1 and outcome.best_epoch == 1 and outcome.framework == "sklearn"
    assert abs(outcome.metrics["val_accuracy"] - plain.score(cancer.x_val, cancer.y_val)) <= 0.02
    assert set(outcome.metrics) == {"train_accuracy", "val_accuracy", "train_loss", "val_loss"}


@pytest.mark.parametrize("estimator", ["sgd", "mlp"])
def test_iterative_estimators_report_every_epoch(cancer, estimator):
    calls = []
    trainer = TrainerSpec(estimator=estimator, epochs=6, learning_rate=0.01, hyperparameters={"random_state": 0})
    outcome = fit_sklearn(trainer, cancer, batch_size=32, on_epoch=lambda e, m: calls.append((e, dict(m))))
    assert [epoch for epoch, _ in calls] == [1, 2, 3, 4, 5, 6]
    for index, (_, payload) in enumerate(calls):
        assert EPOCH_KEYS <= set(payload)
        assert payload["current_loss"] == payload["train_loss"]
        assert payload["best_loss"] == min(m["val_loss"] for _, m in calls[: index + 1])
        assert payload["learning_rate"] == pytest.approx(0.01)
    assert outcome.epochs_run == 6 and len(outcome.history) == 6
    assert outcome.metrics["val_accuracy"] > 0.85


def test_sgd_hinge_has_no_probabilities_so_loss_is_error_rate(cancer):
    outcome = fit_sklearn(TrainerSpec(estimator="sgd", epochs=3, hyperparameters={"loss": "hinge"}), cancer)
    assert outcome.metrics["val_loss"] == pytest.approx(1 - outcome.metrics["val_accuracy"])


def test_gradient_boosting_grows_trees_per_epoch(cancer):
    assert boosting_schedule(100, 30) == [4 * i for i in range(1, 26)]
    assert boosting_schedule(10, 20) == list(range(1, 11))
    calls = []
    trainer = TrainerSpec(estimator="gradient_boosting", epochs=4, hyperparameters={"n_estimators": 20, "random_state": 0})
    outcome = fit_sklearn(trainer, cancer, on_epoch=lambda e, m: calls.append(e))
    assert calls == [1, 2, 3, 4] and outcome.model.n_estimators_ == 20


def test_early_stopping_restores_best_epoch(cancer):
    trainer = TrainerSpec(estimator="mlp", epochs=300, learning_rate=0.05, early_stopping=True, patience=2,
                          hyperparameters={"hidden_layer_sizes": [128, 64], "random_state": 0})
    outcome = fit_sklearn(trainer, cancer, batch_size=16)
    val_losses = [row["val_loss"] for row in outcome.history]
    assert outcome.epochs_run < 300 and outcome.epochs_run == len(val_losses)
    assert outcome.best_epoch == int(np.argmin(val_losses)) + 1 < outcome.epochs_run
    assert outcome.epochs_run - outcome.best_epoch == trainer.patience
    assert evaluate(outcome.model, cancer)["val_loss"] == pytest.approx(min(val_losses), rel=1e-9)
    assert outcome.metrics["val_loss"] == pytest.approx(min(val_losses), rel=1e-9)


def test_regression_metrics(diabetes):
    outcome = fit_sklearn(TrainerSpec(model_type="regression", hyperparameters={"n_estimators": 30}), diabetes)
    assert set(outcome.metrics) == {"train_loss", "val_loss", "val_rmse", "val_r2"}
    assert outcome.metrics["val_rmse"] == pytest.approx(math.sqrt(outcome.metrics["val_loss"]))
    assert outcome.metrics["val_r2"] > 0.2


# ---- validation -------------------------------------------------------------------------------

def test_unknown_hyperparameter_and_estimator_are_refused():
    bad_param = TrainerSpec(estimator="random_forest", hyperparameters={"n_trees": 10})
    [problem] = validate_trainer(bad_param)
    assert "n_trees" in problem and "n_estimators" in problem
    with pytest.raises(ValueError, match=r"n_trees.*allowed.*n_estimators"):
        build_estimator(bad_param, n_jobs=1)

    bad_name = TrainerSpec(estimator="xgboost_deluxe")
    [problem] = validate_trainer(bad_name)
    assert "xgboost_deluxe" in problem and "random_forest" in problem
    with pytest.raises(ValueError, match=r"unknown estimator 'xgboost_deluxe'.*random_forest"):
        build_estimator(bad_name, n_jobs=1)


def test_validate_trainer_other_problems():
    assert validate_trainer(TrainerSpec()) == []
    assert validate_trainer(TrainerSpec(model_type="regression", estimator="ridge", hyperparameters={"alpha": 2.0})) == []
    assert "does not support regression" in validate_trainer(
        TrainerSpec(model_type="regression", estimator="logistic_regression"))[0]
    assert "n_estimators" in validate_trainer(TrainerSpec(hyperparameters={"n_estimators": "many"}))[0]
    assert "lbfgs" in validate_trainer(TrainerSpec(estimator="mlp", hyperparameters={"solver": "lbfgs"}))[0]
    other = types.SimpleNamespace(framework="tensorflow", model_type="classification", estimator=None, hyperparameters={})
    assert "tensorflow" in validate_trainer(other)[0]
    assert validate_trainer(TrainerSpec(framework="pytorch", hyperparameters={"hidden_sizes": [8], "dropout": 0.1})) == []
    problems = validate_trainer(TrainerSpec(framework="pytorch", estimator="random_forest",
                                            hyperparameters={"hidden_sizes": [], "layers": 3}))
    assert len(problems) == 3 and any("layers" in p for p in problems)


def test_progress_objects_are_picklable(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    progress = MlflowProgress(uri, "abc")
    progress._client = lambda: None  # stands in for a live MlflowClient, which is not picklable
    clone = pickle.loads(pickle.dumps(progress))
    assert (clone.tracking_uri, clone.run_id, clone._client) == (uri, "abc", None)
    assert NullProgress().report(1, {"a": 1.0}) is None


# ---- on Ray -----------------------------------------------------------------------------------

def test_fit_on_ray_sklearn_logs_epochs_to_mlflow(local_ray, cancer, tracking_uri):
    run_id = _new_run(tracking_uri)
    trainer = TrainerSpec(estimator="sgd", epochs=4, num_workers=2, learning_rate=0.01)
    outcome = fit_on_ray(trainer, cancer, batch_size=32, progress=MlflowProgress(tracking_uri, run_id), seed=1)
    assert outcome.epochs_run == 4 and outcome.metrics["val_accuracy"] > 0.85
    for key in ("val_loss", "val_accuracy", "current_loss", "best_loss", "learning_rate", "epoch"):
        assert _steps(tracking_uri, run_id, key) == [1, 2, 3, 4]


def test_gpu_requested_on_cpu_cluster(local_ray, cancer):
    for framework in ("sklearn", "pytorch"):
        with pytest.raises(GpuUnavailable, match="use_gpu is true but the Ray cluster has no GPU"):
            fit_on_ray(TrainerSpec(framework=framework, use_gpu=True), cancer)
    assert issubclass(GpuUnavailable, ValueError)


def test_a_fit_takes_the_cpus_free_now_not_the_clusters_total(local_ray, cancer):
    """A replica holding a quarter CPU of the 2: a two-worker fit sized from the total waited for CPUs that never came (CI)."""
    import ray

    @ray.remote(num_cpus=0.25)
    class Replica:
        def ready(self) -> bool:
            return True

    replica = Replica.remote()
    try:
        assert ray.get(replica.ready.remote(), timeout=60)
        sklearn = fit_on_ray(TrainerSpec(estimator="random_forest", num_workers=2), cancer, seed=1)
        torch = fit_on_ray(TrainerSpec(framework="pytorch", num_workers=2, epochs=2, hyperparameters={"hidden_sizes": [8]}), cancer)
    finally:
        ray.kill(replica)
    assert sklearn.resources == {"workers": 1, "gpus": 0} and sklearn.metrics["val_accuracy"] > 0.85
    assert torch.resources == {"workers": 1, "gpus": 0} and torch.epochs_run == 2


@pytest.fixture(scope="module")
def torch_fit(local_ray, cancer, tracking_uri):
    run_id = _new_run(tracking_uri)
    trainer = TrainerSpec(framework="pytorch", num_workers=2, epochs=6, learning_rate=0.01,
                          hyperparameters={"hidden_sizes": [16, 8]})
    outcome = fit_on_ray(trainer, cancer, batch_size=32, progress=MlflowProgress(tracking_uri, run_id))
    return outcome, run_id


def test_torch_data_parallel_on_ray(torch_fit, tracking_uri):
    outcome, run_id = torch_fit
    assert outcome.framework == "pytorch" and outcome.epochs_run == 6
    assert outcome.metrics["val_accuracy"] > 0.9
    assert [row["epoch"] for row in outcome.history] == [1, 2, 3, 4, 5, 6]
    for key in ("val_loss", "val_accuracy", "train_loss", "best_loss", "epoch"):
        assert _steps(tracking_uri, run_id, key) == [1, 2, 3, 4, 5, 6]
    # the worker's own val_loss (torch) agrees with the driver's evaluation (sklearn log_loss)
    assert outcome.metrics["val_loss"] == pytest.approx(outcome.history[-1]["val_loss"], rel=1e-3)


def test_log_torch_model_round_trip(torch_fit, cancer, tracking_uri):
    import mlflow

    from assets.training.torch_model import log_torch_model

    state = torch_fit[0].model
    x_val = cancer.x_val[cancer.feature_columns]
    with mlflow.start_run(run_id=torch_fit[1]):
        info = log_torch_model(state, name="model", input_example=x_val.head(3))
    loaded = mlflow.pyfunc.load_model(info.model_uri)
    proba = np.asarray(loaded.predict(x_val))
    assert proba.shape == (len(x_val), len(cancer.classes))
    np.testing.assert_allclose(proba, state.predict_proba(x_val), rtol=1e-5, atol=1e-6)
    assert (np.asarray(cancer.classes)[proba.argmax(axis=1)] == state.predict(x_val)).all()


def test_torch_regression_smoke(local_ray, diabetes):
    trainer = TrainerSpec(framework="pytorch", model_type="regression", strategy="single", epochs=5,
                          learning_rate=0.01, early_stopping=True, patience=2, hyperparameters={"hidden_sizes": [16]})
    outcome = fit_on_ray(trainer, diabetes, batch_size=32)
    assert math.isfinite(outcome.metrics["val_rmse"]) and outcome.metrics["val_rmse"] < 80
    assert set(outcome.metrics) == {"train_loss", "val_loss", "val_rmse", "val_r2"}
    assert outcome.model.predict(diabetes.x_val).shape == (len(diabetes.x_val),)
