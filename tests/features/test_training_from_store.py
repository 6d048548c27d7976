"""A training job on a feature service: the training set comes from the point-in-time join, the
model is fitted on Ray, and the registered version records its feature service."""

from __future__ import annotations

import dagster as dg
import pytest

from assets.training.assets import trained_model, training_set
from resources.jobs.records import JobStore
from resources.jobs.specs import DataSpec, TrainedModelConfig, TrainerSpec, TrainingSetConfig, run_config
from resources.vocabulary import T_FEATURE_SERVICE
from tests.features.conftest import seed_tenant
from tests.utils.asset_resources import asset_resources, submitted_job

TENANT = "store-training"


@pytest.fixture(scope="module")
def env(tmp_path_factory, local_ray):
    root = tmp_path_factory.mktemp("store-training")
    seed_tenant(root, TENANT, n=600, seed=21)
    resources = asset_resources(root)
    resources["feature_store"].apply(TENANT)
    return resources


def _train(env, tenant: str, data: DataSpec, model_name: str):
    """A training job's two assets under ``dg.materialize`` (logistic regression); its context and the result."""
    ctx = submitted_job(env["state"], tenant, "training")
    result = dg.materialize(
        [training_set, trained_model], resources=env,
        run_config=run_config(
            training_set=TrainingSetConfig(context=ctx, data=data),
            trained_model=TrainedModelConfig(context=ctx, model_name=model_name, trainer=TrainerSpec(estimator="logistic_regression")),
        ),
    )
    assert result.success
    return ctx, result


def test_training_on_a_feature_service_records_it_on_the_version(env):
    data = DataSpec(train_path="features/churn_labels.parquet", target_column="churned", feature_service="churn_v1")
    ctx, result = _train(env, TENANT, data, "churn")
    training = result.output_for_node("training_set")
    assert training.feature_columns == ["total_orders", "days_since_last_order", "avg_order_value", "support_tickets"]
    assert result.asset_materializations_for_node("training_set")[0].metadata["feature_service"].value == "churn_v1"
    output = result.output_for_node("trained_model")
    assert output["feature_service"] == "churn_v1" and output["metrics"]["val_accuracy"] > 0.6
    version = env["registry"].list_versions(TENANT, output["model_id"])[0]
    client = env["registry"].client
    tags = client.get_model_version(f"{TENANT}.churn", str(version.mlflow_version)).tags
    assert tags[T_FEATURE_SERVICE] == "churn_v1"
    assert client.get_run(JobStore(env["state"]).get(TENANT, ctx.job_id).result["mlflow_run_id"]).data.tags[T_FEATURE_SERVICE] == "churn_v1"


def test_unknown_feature_service_fails_the_job(env):
    ctx = submitted_job(env["state"], TENANT, "training")
    data = DataSpec(train_path="features/churn_labels.parquet", target_column="churned", feature_service="churn_v9")
    result = dg.materialize([training_set], resources=env, raise_on_error=False,
                            run_config=run_config(training_set=TrainingSetConfig(context=ctx, data=data)))
    assert not result.success
    assert "churn_v9" in JobStore(env["state"]).get(TENANT, ctx.job_id).error


def test_training_on_a_tenants_own_feature_service_with_two_join_keys(env):
    """A tenant-defined domain (tests/utils/products.py): labels keyed by store_id and sku joined
    point-in-time to its service demand_v1; the version records that service."""
    from tests.utils.products import DEMAND_FEATURES, applied_products

    frames = applied_products(env["feature_store"], "shop-training", stores=4, skus=40)
    data = DataSpec(train_path="products/labels.parquet", target_column="high_demand", feature_service="demand_v1")
    _, result = _train(env, "shop-training", data, "demand")
    training = result.output_for_node("training_set")
    assert training.feature_columns == DEMAND_FEATURES
    assert len(training.x_train) + len(training.x_val) == len(frames["labels"])  # every label found its features
    joined = training.x_train.iloc[0]
    assert set(joined.index) == set(DEMAND_FEATURES)
    output = result.output_for_node("trained_model")
    assert output["feature_service"] == "demand_v1" and output["metrics"]["val_accuracy"] > 0.6
