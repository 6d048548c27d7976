"""A training job on a feature service: the training set comes from the point-in-time join, the
model is fitted on Ray, and the registered version records its feature service."""

from __future__ import annotations

import dagster as dg
import pytest

from assets.training.assets import trained_model, training_set
from resources.job_specs import DataSpec, TrainedModelConfig, TrainerSpec, TrainingSetConfig, run_config
from resources.jobs import JobStore
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


def test_training_on_a_feature_service_records_it_on_the_version(env):
    ctx = submitted_job(env["state"], TENANT, "training")
    data = DataSpec(train_path="features/churn_labels.parquet", target_column="churned", feature_service="churn_v1")
    result = dg.materialize(
        [training_set, trained_model], resources=env,
        run_config=run_config(
            training_set=TrainingSetConfig(context=ctx, data=data),
            trained_model=TrainedModelConfig(context=ctx, model_name="churn", trainer=TrainerSpec(estimator="logistic_regression")),
        ),
    )
    assert result.success
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


def test_training_on_a_tenants_own_feature_service_with_two_join_keys(env, tmp_path_factory):
    """A tenant-defined domain (tests/utils/products.py): labels keyed by store_id and sku joined
    point-in-time to its service demand_v1; the version records that service."""
    from datetime import UTC, datetime

    from resources.feature_definitions import FeatureDocument, feast_objects
    from tests.utils.products import DEMAND_FEATURES, DOCUMENT, write_products

    tenant = "shop-training"
    area = env["feature_store"].source_dir(tenant).parent
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    frames = write_products(area, today, stores=4, skus=40)
    objects = feast_objects(FeatureDocument.model_validate(DOCUMENT), lambda source: str(area / source.path))
    env["feature_store"].apply_objects(tenant, objects)

    ctx = submitted_job(env["state"], tenant, "training")
    data = DataSpec(train_path="products/labels.parquet", target_column="high_demand", feature_service="demand_v1")
    result = dg.materialize(
        [training_set, trained_model], resources=env,
        run_config=run_config(
            training_set=TrainingSetConfig(context=ctx, data=data),
            trained_model=TrainedModelConfig(context=ctx, model_name="demand", trainer=TrainerSpec(estimator="logistic_regression")),
        ),
    )
    assert result.success
    training = result.output_for_node("training_set")
    assert training.feature_columns == DEMAND_FEATURES
    assert len(training.x_train) + len(training.x_val) == len(frames["labels"])  # every label found its features
    joined = training.x_train.iloc[0]
    assert set(joined.index) == set(DEMAND_FEATURES)
    output = result.output_for_node("trained_model")
    assert output["feature_service"] == "demand_v1" and output["metrics"]["val_accuracy"] > 0.6
