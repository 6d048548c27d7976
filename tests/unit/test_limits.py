"""Bounds on what one training or tuning job can cost (resources/jobs/limits.py): each oversized request
is refused naming the bound, on the API's validators and on the Dagster side alike; every run the
platform launches carries Dagster's maximum-runtime tag."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import pytest
from pydantic import ValidationError

from resources.infra.state_db import StateStore
from resources.jobs import limits
from resources.jobs.estimators import ESTIMATORS, build_estimator, final_estimator, validate_trainer
from resources.jobs.records import JobStore
from resources.jobs.search_space import MAX_GRID_POINTS, validate_tuning
from resources.jobs.specs import JobContext, TrainedModelConfig, TrainerSpec, TuningConfig

CTX = JobContext(tenant_id="t1", job_id="limits-test")


@pytest.mark.parametrize(
    ("estimator", "hyperparameters", "fragment"),
    [
        ("random_forest", {"n_estimators": 1_000_000}, "n_estimators=1000000 is above the bound 1000"),
        ("extra_trees", {"max_depth": 500}, "max_depth=500 is above the bound 32"),
        ("random_forest", {"max_leaf_nodes": 10**7}, "above the bound 65536"),
        ("random_forest", {"max_depth": None}, "grow without bound"),  # explicit full trees
        ("gradient_boosting", {"max_depth": None}, "grow without bound"),
        ("gradient_boosting", {"n_estimators": 5000}, "n_estimators=5000 is above the bound 1000"),
        ("hist_gradient_boosting", {"max_iter": 100_000}, "max_iter=100000 is above the bound 1000"),
        ("hist_gradient_boosting", {"max_leaf_nodes": None}, "grow without bound"),
        ("logistic_regression", {"max_iter": 10**9}, "above the bound 10000"),
        ("knn", {"n_neighbors": 50_000}, "n_neighbors=50000 is above the bound 1000"),
        ("mlp", {"hidden_layer_sizes": [4096]}, "layer of 4096 units; the bound is 1024"),
        ("mlp", {"hidden_layer_sizes": [8] * 9}, "9 layers; the bound is 8"),
        ("mlp", {"hidden_layer_sizes": [1000] * 5}, "5000 hidden units in all; the bound is 4096"),
        ("mlp", {"hidden_layer_sizes": 5000}, "layer of 5000 units"),
    ],
)
def test_oversized_hyperparameters_are_refused_naming_the_bound(estimator, hyperparameters, fragment):
    model_type = "classification" if "classification" in ESTIMATORS[estimator] else "regression"
    problems = validate_trainer(TrainerSpec(estimator=estimator, model_type=model_type, hyperparameters=hyperparameters))
    assert any(fragment in p for p in problems), problems


@pytest.mark.parametrize(("hidden", "fragment"), [([4096], "the bound is 1024"), ([16] * 12, "12 layers"),
                                                  ([1024, 1024, 1024, 1024, 1024], "5120 hidden units")])
def test_oversized_torch_mlp_is_refused(hidden, fragment):
    problems = validate_trainer(TrainerSpec(framework="pytorch", hyperparameters={"hidden_sizes": hidden}))
    assert any(fragment in p for p in problems), problems


def test_every_default_is_within_the_bounds_and_forests_get_a_depth():
    for name, types in ESTIMATORS.items():
        for model_type in types:
            assert validate_trainer(TrainerSpec(estimator=name, model_type=model_type)) == [], name
    assert validate_trainer(TrainerSpec(framework="pytorch")) == []
    forest = final_estimator(build_estimator(TrainerSpec(estimator="random_forest")))
    assert forest.max_depth == limits.PLATFORM_DEFAULTS["random_forest"]["max_depth"] == 32
    # at the bound is fine, and full trees are fine when the leaves are bounded
    assert validate_trainer(TrainerSpec(hyperparameters={"n_estimators": 1000, "max_depth": 32})) == []
    assert validate_trainer(TrainerSpec(hyperparameters={"max_depth": None, "max_leaf_nodes": 1000})) == []


@pytest.mark.parametrize(("field", "bound"), [("epochs", limits.MAX_EPOCHS), ("batch_size", limits.MAX_BATCH_SIZE),
                                              ("num_workers", limits.MAX_WORKERS)])
def test_dagster_configs_carry_the_trainer_bounds(field, bound):
    """A run launched from the Dagster UI is bounded too: its config cannot be built past a bound."""
    TrainerSpec(**{field: bound})
    with pytest.raises(ValidationError, match=f"less than or equal to {bound}"):
        TrainerSpec(**{field: bound + 1})
    with pytest.raises(ValidationError, match=f"less than or equal to {bound}"):
        TrainedModelConfig(context=CTX, model_name="m", trainer={field: bound + 1})


def _tuning(space, **values) -> TuningConfig:
    fields = dict(context=CTX, model_name="m", trainer=TrainerSpec(estimator="random_forest"), search_space=space,
                  num_trials=10, algorithm="random")
    return TuningConfig(**{**fields, **values})


@pytest.mark.parametrize(("field", "bound"), [("num_trials", limits.MAX_TRIALS),
                                              ("max_concurrent_trials", limits.MAX_CONCURRENT_TRIALS)])
def test_tuning_budget_is_bounded(field, bound):
    space = {"n_estimators": {"type": "choice", "values": [5, 10]}}
    _tuning(space, **{field: bound})
    with pytest.raises(ValidationError, match=f"less than or equal to {bound}"):
        _tuning(space, **{field: bound + 1})
    assert MAX_GRID_POINTS == limits.MAX_TRIALS  # a grid has one trial per point


@pytest.mark.parametrize(
    ("space", "fragment"),
    [
        ({"n_estimators": {"type": "randint", "min": 10, "max": 100_000}}, "n_estimators=100000 is above the bound 1000"),
        ({"n_estimators": {"type": "choice", "values": [10, 50, 2000]}}, "n_estimators=2000 is above the bound 1000"),
        ({"max_depth": {"type": "uniform", "min": 2, "max": 64.5}}, "max_depth=64.5 is above the bound 32"),
        # quniform rounds to multiples of q: 1000 / 7 rounds up to 1001
        ({"n_estimators": {"type": "quniform", "min": 7, "max": 1000, "q": 7}}, "n_estimators=1001"),
        ({"max_depth": {"type": "choice", "values": [4, None]}}, "grow without bound"),
        ({"epochs": {"type": "randint", "min": 1, "max": 100_000}}, f"less than or equal to {limits.MAX_EPOCHS}"),
        ({"batch_size": {"type": "choice", "values": [32, 10**7]}}, f"less than or equal to {limits.MAX_BATCH_SIZE}"),
    ],
)
def test_search_space_values_beyond_a_bound_are_refused(space, fragment):
    problems = validate_tuning(_tuning(space))
    assert any(fragment in p for p in problems), problems
    assert all(p.startswith("search_space.") for p in problems)


def test_search_spaces_within_the_bounds_pass():
    fine_q = {"max_depth": {"type": "quniform", "min": 2, "max": 30, "q": 1e-6}}  # millions of points: fine to sample
    assert validate_tuning(_tuning(fine_q)) == []
    space = {"n_estimators": {"type": "randint", "min": 10, "max": 1000}, "max_depth": {"type": "choice", "values": [2, 32]}}
    assert validate_tuning(_tuning(space)) == []
    boosting = {"learning_rate": {"type": "loguniform", "min": 0.01, "max": 0.3}}  # a hyperparameter with no bound
    assert validate_tuning(_tuning(boosting, trainer=TrainerSpec(estimator="gradient_boosting"))) == []


def test_the_training_asset_refuses_an_oversized_run_before_touching_ray(tmp_path):
    """As launched from the Dagster UI, with no API in front: the asset's own check refuses it."""
    import pandas as pd

    from assets.training.assets import trained_model
    from assets.training.training_data import TrainingData

    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0]})
    data = TrainingData(frame, pd.Series([0, 1, 0, 1]), frame, pd.Series([0, 1, 0, 1]), ["a"], "y", "classification", [0, 1])
    state = StateStore(database_url=f"sqlite:///{tmp_path / 'state.db'}")
    record, _ = JobStore(state).create("t1", kind="training", request={}, submitted_by="dagster-ui")
    config = TrainedModelConfig(context=JobContext(tenant_id="t1", job_id=record.job_id), model_name="m",
                                trainer=TrainerSpec(hyperparameters={"n_estimators": 10**6}))
    with pytest.raises(dg.Failure, match="above the bound 1000"):
        trained_model(dg.build_asset_context(), config=config, training_set=data, registry=None, ray_cluster=None, state=state)
    assert "above the bound 1000" in JobStore(state).get("t1", record.job_id).error


def test_runs_carry_dagsters_max_runtime_tag():
    from dagster._core.storage.tags import MAX_RUNTIME_SECONDS_TAG  # what the daemon's run monitoring reads

    from resources import vocabulary

    assert vocabulary.RUN_MAX_RUNTIME == MAX_RUNTIME_SECONDS_TAG == "dagster/max_runtime"
    assert vocabulary.job_run_tags("t1", "train-job-1", "training", 120)["dagster/max_runtime"] == "7200"
    assert vocabulary.job_run_tags("t1", "mat-job-1", "materialization", 0.3) == {
        "mlservice/tenant": "t1", "mlservice/job_id": "mat-job-1", "mlservice/kind": "materialization",
        "dagster/max_runtime": "18"}
    assert vocabulary.job_run_tags("t1", "tune-job-1", "tuning", None)["mlservice/compute_tenant"] == "t1"


def test_scheduled_materializations_carry_the_max_runtime_tag(tmp_path, monkeypatch):
    from pipelines.schedules import build_feature_schedule
    from resources.features.store import FeatureStoreResource
    from tests.features.conftest import seed_tenant

    monkeypatch.setenv("MLSERVICE_MAX_RUN_MINUTES", "0.5")
    seed_tenant(tmp_path, "sched-tenant", n=20)
    store = FeatureStoreResource(data_dir=str(tmp_path))
    store.apply("sched-tenant")
    resources = {"feature_store": store, "state": StateStore(database_url=f"sqlite:///{tmp_path / 'state.db'}")}
    tick = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
    with dg.build_schedule_context(resources=resources, scheduled_execution_time=tick) as context:
        [request] = build_feature_schedule()(context)
    assert request.tags["dagster/max_runtime"] == "30"
