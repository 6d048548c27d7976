"""Ray Tune runs on a real local Ray (2 CPUs) over scikit-learn's bundled breast_cancer data."""

from __future__ import annotations

import time

import pytest

from assets.training.training_data import TrainingData
from assets.tuning.tune_run import (
    TrialResult,
    run_tuning,
    trial_trainer,
    validate_tuning,
)
from resources.errors import InvalidRequest
from resources.jobs.specs import JobContext, TrainerSpec, TuningConfig
from tests.utils import datasets

RF_SPACE = {
    "n_estimators": {"type": "choice", "values": [10, 30]},
    "max_depth": {"type": "randint", "min": 2, "max": 6},
}


@pytest.fixture(scope="module")
def data() -> TrainingData:
    return datasets.training_data(datasets.breast_cancer(), "classification", stratify=True)


def tuning(space, **overrides) -> TuningConfig:
    values = dict(
        context=JobContext(tenant_id="t1", job_id="tune-test"),
        model_name="m",
        trainer=TrainerSpec(estimator="random_forest"),
        search_space=space,
        num_trials=4,
        max_concurrent_trials=2,
        algorithm="bayesian",
    )
    values.update(overrides)
    return TuningConfig(**values)


def in_rf_space(config: dict) -> bool:
    return config["n_estimators"] in (10, 30) and 2 <= config["max_depth"] <= 6 and set(config) == set(RF_SPACE)


# --- validation and config mapping (no Ray) ----------------------------------------------------


def test_trial_trainer_maps_fields_and_hyperparameters():
    base = TrainerSpec(estimator="sgd", hyperparameters={"penalty": "l2"}, epochs=20)
    trainer = trial_trainer(base, {"epochs": 3, "learning_rate": 0.05, "alpha": 0.01})
    assert trainer.epochs == 3 and trainer.learning_rate == 0.05
    assert trainer.hyperparameters == {"penalty": "l2", "alpha": 0.01}
    assert base.epochs == 20 and base.hyperparameters == {"penalty": "l2"}  # untouched


def test_learning_rate_is_the_trainer_field_only_where_it_drives_the_estimator():
    boosting = trial_trainer(TrainerSpec(estimator="gradient_boosting"), {"learning_rate": 0.2})
    assert boosting.hyperparameters == {"learning_rate": 0.2} and boosting.learning_rate == 0.001
    mlp = trial_trainer(TrainerSpec(estimator="mlp"), {"learning_rate": 0.02})
    assert mlp.learning_rate == 0.02 and mlp.hyperparameters == {}
    schedule = trial_trainer(TrainerSpec(estimator="sgd"), {"learning_rate": "optimal"})  # sklearn's schedule
    assert schedule.hyperparameters == {"learning_rate": "optimal"} and schedule.learning_rate == 0.001
    forest = trial_trainer(TrainerSpec(estimator="random_forest"), {"learning_rate": 0.1, "n_estimators": 50})
    assert forest.hyperparameters == {"n_estimators": 50} and forest.learning_rate == 0.1  # no effect: reported, not refused


def test_the_references_tuning_space_is_valid_for_a_random_forest():
    """The reference tunes learning_rate beside n_estimators, max_depth and min_samples_split; on a
    random forest it is accepted and reported as having no effect."""
    from resources.jobs.search_space import ignored_search_space, validate_tuning
    from resources.jobs.specs import TuningConfig

    space = {"learning_rate": {"type": "loguniform", "min": 0.001, "max": 0.1},
             "n_estimators": {"type": "choice", "values": [50, 100, 200]},
             "max_depth": {"type": "randint", "min": 3, "max": 10},
             "min_samples_split": {"type": "choice", "values": [2, 5, 10]}}
    tuning = TuningConfig.model_construct(search_space=space, trainer=TrainerSpec(estimator="random_forest"),
                                          objective_metric="val_accuracy", mode="max", num_trials=4, algorithm="bayesian",
                                          max_concurrent_trials=1)
    assert validate_tuning(tuning) == []
    assert ignored_search_space(space, "random_forest") == {
        "search_space.learning_rate": "random_forest has no learning rate: the trials' values have no effect on it"}
    assert ignored_search_space(space, "gradient_boosting") == ignored_search_space(space, "mlp") == {}


def test_valid_request_has_no_problems():
    assert validate_tuning(tuning(RF_SPACE)) == []


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"objective_metric": "val_f1"}, "objective_metric"),
        ({"objective_metric": "val_r2"}, "objective_metric"),  # a regression metric
        ({"algorithm": "grid", "num_trials": 3,
          "search_space": {"a": {"type": "choice", "values": [1, 2]}, "b": {"type": "choice", "values": [1, 2]}}},
         "num_trials"),
        ({"search_space": {"estimator": {"type": "choice", "values": ["sgd", "mlp"]}}}, "cannot be tuned"),
        ({"search_space": {"not_a_param": {"type": "choice", "values": [1]}}}, "unknown hyperparameters"),
        ({"search_space": {"max_depth": {"type": "randint", "min": 4, "max": 2}}}, "search_space.max_depth"),
        ({"trainer": TrainerSpec(framework="pytorch")}, "framework"),
        ({"search_space": {"epochs": {"type": "randint", "min": 0, "max": 5}}}, "search_space.epochs"),
        ({"search_space": {"patience": {"type": "choice", "values": [2, -1]}}}, "search_space.patience"),
    ],
)
def test_validate_tuning_problems(overrides, fragment):
    problems = validate_tuning(tuning(RF_SPACE, **overrides))
    assert any(fragment in p for p in problems), problems


def test_unknown_objective_metric_is_refused_before_any_trial(tmp_path):
    # no Ray cluster is needed: the request is refused first
    with pytest.raises(InvalidRequest) as caught:
        run_tuning(tuning(RF_SPACE, objective_metric="val_f1"), None, storage_dir=str(tmp_path))
    assert any("objective_metric" in p for p in caught.value.details["problems"])
    with pytest.raises(InvalidRequest) as caught:
        run_tuning(tuning({"x": {"type": "uniform", "min": 1, "max": 0}}), None, storage_dir=str(tmp_path))
    assert "x" in caught.value.details["search_space"]
    assert not list(tmp_path.iterdir())


# --- real Ray Tune runs -----------------------------------------------------------------------


def test_bayesian_random_forest(local_ray, data, tmp_path):
    seen: list[tuple[TrialResult, int]] = []
    started = time.monotonic()
    outcome = run_tuning(
        tuning(RF_SPACE), data, storage_dir=str(tmp_path), name="bayes",
        on_trial_done=lambda trial, done: seen.append((trial, done)),
    )
    elapsed = time.monotonic() - started

    assert len(outcome.trials) == 4
    assert all(t.status == "completed" and t.epochs == 1 for t in outcome.trials)
    assert all(in_rf_space(t.config) and t.metric is not None for t in outcome.trials)
    assert in_rf_space(outcome.best_config)
    assert outcome.best_metric == max(t.metric for t in outcome.trials)
    assert outcome.best_config in [t.config for t in outcome.trials]
    # the refit on the same split reproduces the best trial's score
    assert outcome.best_model is not None
    # (same split, same seed: the same forest)
    assert outcome.best_model.metrics["val_accuracy"] == pytest.approx(outcome.best_metric, abs=1e-9)
    # live progress: once per trial, counting up, in the driver
    assert [done for _, done in seen] == [1, 2, 3, 4]
    assert all(trial.status == "completed" and trial.metric is not None for trial, _ in seen)
    assert sorted(t.trial_id for t, _ in seen) == sorted(t.trial_id for t in outcome.trials)
    # the experiment lives under storage_dir
    assert (tmp_path / "bayes").is_dir()
    print(f"bayesian 4 trials: {elapsed:.1f}s")


def test_grid_runs_exactly_the_grid(local_ray, data, tmp_path):
    space = {
        "n_estimators": {"type": "choice", "values": [5, 15]},
        "criterion": {"type": "choice", "values": ["gini", "entropy"]},
    }
    # num_trials above the grid size: the grid runs once in full
    outcome = run_tuning(tuning(space, algorithm="grid", num_trials=10), data, storage_dir=str(tmp_path), refit=False)
    configs = sorted((t.config["n_estimators"], t.config["criterion"]) for t in outcome.trials)
    assert configs == [(5, "entropy"), (5, "gini"), (15, "entropy"), (15, "gini")]
    assert outcome.best_model is None
    assert outcome.best_metric == max(t.metric for t in outcome.trials)


def test_failing_trials_are_reported_as_errors(local_ray, data, tmp_path):
    # only the first choice is checked up front; "bogus" fails inside its trial
    space = {"max_features": {"type": "choice", "values": ["sqrt", "bogus"]}}
    seen: list[TrialResult] = []
    outcome = run_tuning(
        tuning(space, algorithm="grid", trainer=TrainerSpec(estimator="random_forest",
                                                           hyperparameters={"n_estimators": 5})),
        data, storage_dir=str(tmp_path), refit=False, on_trial_done=lambda trial, done: seen.append(trial),
    )
    by_value = {t.config["max_features"]: t for t in outcome.trials}
    assert by_value["bogus"].status == "error" and by_value["bogus"].metric is None
    assert by_value["sqrt"].status == "completed"
    assert outcome.best_config == {"max_features": "sqrt"}
    assert sorted(t.status for t in seen) == ["completed", "error"]


def test_random_search_with_continuous_space(local_ray, data, tmp_path):
    space = {
        "max_features": {"type": "uniform", "min": 0.2, "max": 0.8},
        "min_samples_leaf": {"type": "randint", "min": 1, "max": 4},
        "n_estimators": {"type": "choice", "values": [10]},
    }
    outcome = run_tuning(
        tuning(space, algorithm="random", num_trials=3, objective_metric="val_loss", mode="min"),
        data, storage_dir=str(tmp_path),
    )
    assert len(outcome.trials) == 3
    for trial in outcome.trials:
        assert 0.2 <= trial.config["max_features"] <= 0.8 and trial.config["min_samples_leaf"] in (1, 2, 3, 4)
    assert outcome.best_metric == min(t.metric for t in outcome.trials)
    assert outcome.best_model.metrics["val_loss"] == pytest.approx(outcome.best_metric, rel=0.1)


def test_iterative_estimator_reports_every_epoch_under_asha(local_ray, data, tmp_path):
    space = {"alpha": {"type": "loguniform", "min": 1e-5, "max": 1.0}}
    trainer = TrainerSpec(estimator="sgd", epochs=8, learning_rate=0.01)
    done: list[int] = []
    outcome = run_tuning(
        tuning(space, trainer=trainer, algorithm="random", num_trials=4),
        data, storage_dir=str(tmp_path), on_trial_done=lambda trial, count: done.append(count),
    )
    assert len(outcome.trials) == 4 and done == [1, 2, 3, 4]
    assert max(t.epochs for t in outcome.trials) > 1
    for trial in outcome.trials:
        assert trial.status in ("completed", "stopped_early")
        assert 1e-5 <= trial.config["alpha"] <= 1.0
        if trial.status == "completed":
            assert trial.epochs == 8
        else:
            assert 1 <= trial.epochs < 8
    best = next(t for t in outcome.trials if t.config == outcome.best_config)
    assert best.status == "completed"
    assert outcome.best_model.epochs_run == 8
