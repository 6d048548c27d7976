"""A training job on a feature service: the training set comes from the point-in-time join, the
model is fitted on Ray, and the registered version records its feature service."""

from __future__ import annotations

import dagster as dg
import pytest

from assets.training.assets import FEATURE_SERVICE_TAG, trained_model, training_set
from resources.data_access import DataAccessPolicy
from resources.feature_store import FeatureStoreResource
from resources.job_specs import DataSpec, JobContext, TrainedModelConfig, TrainerSpec, TrainingSetConfig, run_config
from resources.jobs import JobStore
from resources.ray_cluster import RayCluster
from resources.registry import ModelRegistry
from resources.state_db import StateStore
from tests.features.conftest import seed_tenant

TENANT = "store-training"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    import ray

    root = tmp_path_factory.mktemp("store-training")
    seed_tenant(root, TENANT, n=600, seed=21)
    state = StateStore(database_url=f"sqlite:///{root / 'state.db'}")
    (root / "mlflow").mkdir()
    feature_store = FeatureStoreResource(data_dir=str(root))
    feature_store.apply(TENANT)
    ray.init(num_cpus=2, include_dashboard=False, logging_level="warning")
    yield {
        "state": state,
        "registry": ModelRegistry(tracking_uri=f"sqlite:///{root / 'mlflow' / 'mlflow.db'}", state=state,
                                  artifact_root=(root / "mlflow" / "artifacts").as_uri()),
        "data_access": DataAccessPolicy(data_dir=str(root)),
        "ray_cluster": RayCluster(address="auto"),
        "feature_store": feature_store,
    }
    ray.shutdown()


def test_training_on_a_feature_service_records_it_on_the_version(env):
    record, _ = JobStore(env["state"]).create(TENANT, kind="training", request={}, submitted_by="tester")
    ctx = JobContext(tenant_id=TENANT, job_id=record.job_id, requested_by="tester")
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
    assert tags[FEATURE_SERVICE_TAG] == "churn_v1"
    assert client.get_run(JobStore(env["state"]).get(TENANT, record.job_id).result["mlflow_run_id"]).data.tags[FEATURE_SERVICE_TAG] == "churn_v1"


def test_unknown_feature_service_fails_the_job(env):
    record, _ = JobStore(env["state"]).create(TENANT, kind="training", request={}, submitted_by="tester")
    ctx = JobContext(tenant_id=TENANT, job_id=record.job_id, requested_by="tester")
    data = DataSpec(train_path="features/churn_labels.parquet", target_column="churned", feature_service="churn_v9")
    result = dg.materialize([training_set], resources=env, raise_on_error=False,
                            run_config=run_config(training_set=TrainingSetConfig(context=ctx, data=data)))
    assert not result.success
    assert "churn_v9" in JobStore(env["state"]).get(TENANT, record.job_id).error
