"""The training and tuning assets under ``dg.materialize``: real local Ray (num_cpus=2), real
MLflow (SQLite), the platform's state tables and data-path rule; the Definitions resolve."""

from __future__ import annotations

import dagster as dg
import pytest

from assets.training.assets import trained_model, training_set
from assets.tuning.assets import tuned_model
from resources.jobs.records import JobStore
from resources.jobs.specs import DataSpec, TrainedModelConfig, TrainerSpec, TrainingSetConfig, TuningConfig, run_config
from tests.utils.asset_resources import asset_resources, submitted_job
from tests.utils.datasets import breast_cancer

TENANT = "asset-tests"


@pytest.fixture(scope="module")
def env(tmp_path_factory, local_ray):
    root = tmp_path_factory.mktemp("assets")
    (root / "tenants" / TENANT / "bc").mkdir(parents=True)
    breast_cancer(snake_case=True).to_parquet(root / "tenants" / TENANT / "bc" / "all.parquet", index=False)
    return asset_resources(root)  # its RayCluster(address="auto") reuses local_ray


def test_training_assets_fit_log_and_register(env):
    ctx = submitted_job(env["state"], TENANT, "training", {"model_name": "bc_gb"})
    trainer = TrainerSpec(estimator="gradient_boosting", epochs=5, hyperparameters={"n_estimators": 50, "max_depth": 2},
                          early_stopping=True, patience=2, num_workers=8)
    result = dg.materialize(
        [training_set, trained_model], resources=env,
        run_config=run_config(
            training_set=TrainingSetConfig(context=ctx, data=DataSpec(train_path="bc/all.parquet", target_column="target")),
            trained_model=TrainedModelConfig(context=ctx, model_name="bc_gb", trainer=trainer),
        ),
    )
    assert result.success
    data = result.output_for_node("training_set")
    assert len(data.x_train) + len(data.x_val) == 569 and data.classes == [0, 1]
    output = result.output_for_node("trained_model")
    assert output["version"] == "1.0.0" and output["metrics"]["val_accuracy"] > 0.9
    metadata = result.asset_materializations_for_node("trained_model")[0].metadata
    assert metadata["version"].value == "1.0.0" and metadata["val_accuracy"].value == output["metrics"]["val_accuracy"]
    job = JobStore(env["state"]).get(TENANT, ctx.job_id)
    assert job.result["model_id"] == output["model_id"] and job.result["mlflow_run_id"]
    assert job.result["resources"] == {"workers": 2, "gpus": 0}  # what Ray gave (the cluster's 2 CPUs), not the 8 asked
    history = env["registry"].client.get_metric_history(job.result["mlflow_run_id"], "val_loss")
    assert [m.step for m in history] == list(range(1, len(history) + 1)) and len(history) >= 2
    versions = env["registry"].list_versions(TENANT, output["model_id"])
    assert [(v.version, v.stage) for v in versions] == [("1.0.0", "development")]

    import mlflow

    loaded = mlflow.sklearn.load_model(f"models:/{TENANT}.bc_gb/{versions[0].mlflow_version}")
    assert loaded.predict_proba(data.x_val.head(3)).shape == (3, 2)
    # the input example (the explanations' background) is 50 training rows, not validation rows
    from mlflow.models import Model

    local = mlflow.artifacts.download_artifacts(f"models:/{TENANT}.bc_gb/{versions[0].mlflow_version}")
    example = Model.load(local).load_input_example(local)
    assert len(example) == 50
    train_rows = {tuple(r) for r in data.x_train.round(9).itertuples(index=False)}
    assert all(tuple(r) in train_rows for r in example[list(data.x_train.columns)].round(9).itertuples(index=False))
    # the drift reference: every training row (fewer than 10,000) of the signature's columns, tied to the version's run
    from mlservice.monitoring.reference import training_reference

    reference = training_reference(env["registry"], env["registry"].resolve_version(TENANT, output["model_id"], "1.0.0"))
    assert list(reference.columns) == list(data.x_train.columns) and len(reference) == len(data.x_train)
    assert {tuple(r) for r in reference.round(9).itertuples(index=False)} == train_rows


def test_bad_target_fails_the_run_with_a_readable_message(env):
    ctx = submitted_job(env["state"], TENANT, "training", {"model_name": "bc_bad"})
    result = dg.materialize(
        [training_set, trained_model], resources=env, raise_on_error=False,
        run_config=run_config(
            training_set=TrainingSetConfig(context=ctx, data=DataSpec(train_path="bc/all.parquet", target_column="churned")),
            trained_model=TrainedModelConfig(context=ctx, model_name="bc_bad", trainer=TrainerSpec()),
        ),
    )
    assert not result.success
    assert "target column 'churned' not found" in JobStore(env["state"]).get(TENANT, ctx.job_id).error


def test_paths_outside_the_tenant_area_fail(env):
    ctx = submitted_job(env["state"], TENANT, "training", {"model_name": "bc_escape"})
    result = dg.materialize(
        [training_set], resources=env, raise_on_error=False,
        run_config=run_config(training_set=TrainingSetConfig(
            context=ctx, data=DataSpec(train_path="../other/all.parquet", target_column="target"))),
    )
    assert not result.success
    assert "not allowed" in JobStore(env["state"]).get(TENANT, ctx.job_id).error


def test_tuning_asset_registers_the_best_trial(env):
    ctx = submitted_job(env["state"], TENANT, "tuning", {"model_name": "bc_tuned"})
    tuning = TuningConfig(
        context=ctx, model_name="bc_tuned", trainer=TrainerSpec(estimator="random_forest"),
        search_space={"n_estimators": {"type": "choice", "values": [5, 20]}, "max_depth": {"type": "randint", "min": 2, "max": 4}},
        num_trials=3, algorithm="random", max_concurrent_trials=2,
    )
    result = dg.materialize(
        [training_set, tuned_model], resources=env,
        run_config=run_config(
            training_set=TrainingSetConfig(context=ctx, data=DataSpec(train_path="bc/all.parquet", target_column="target")),
            tuned_model=tuning,
        ),
    )
    assert result.success
    output = result.output_for_node("tuned_model")
    assert len(output["trials"]) == 3 and output["version"] == "1.0.0"
    assert output["best_metric"] == max(t["metric"] for t in output["trials"] if t["metric"] is not None)
    job = JobStore(env["state"]).get(TENANT, ctx.job_id)
    assert job.result["trials_done"] == 3 and job.result["best_config"] == output["best_config"]
    assert job.result["resources"] == {"workers": 2, "gpus": 0}  # two trials at once, one CPU each


def test_training_reads_its_data_from_s3(env, s3_server, tmp_path):
    """train_path and validation_path on an S3-compatible server (moto's server process), granted
    to this tenant alone; the same assets and reader as for local files."""
    from sklearn.model_selection import train_test_split

    bucket = s3_server.bucket("training")
    train, val = train_test_split(breast_cancer(snake_case=True), test_size=0.25, random_state=3)
    s3_server.put_parquet(f"s3://{bucket}/bc/train.parquet", train)
    s3_server.put_parquet(f"s3://{bucket}/bc/val.parquet", val)
    resources = {**env, "data_access": s3_server.policy(tmp_path, tenant_buckets={TENANT: [bucket]})}
    data = DataSpec(train_path=f"s3://{bucket}/bc/train.parquet", validation_path=f"s3://{bucket}/bc/val.parquet",
                    target_column="target")
    ctx = submitted_job(env["state"], TENANT, "training", {"model_name": "bc_s3"})
    trainer = TrainerSpec(estimator="random_forest", hyperparameters={"n_estimators": 20, "max_depth": 4, "random_state": 0})
    result = dg.materialize(
        [training_set, trained_model], resources=resources,
        run_config=run_config(training_set=TrainingSetConfig(context=ctx, data=data),
                              trained_model=TrainedModelConfig(context=ctx, model_name="bc_s3", trainer=trainer)),
    )
    assert result.success
    training = result.output_for_node("training_set")
    assert (len(training.x_train), len(training.x_val)) == (len(train), len(val))
    output = result.output_for_node("trained_model")
    assert output["version"] == "1.0.0" and output["metrics"]["val_accuracy"] > 0.9

    # the grant is this tenant's alone: another tenant's run is refused before anything is read
    other = submitted_job(env["state"], "other-tenant", "training", {"model_name": "bc_s3"})
    refused = dg.materialize(
        [training_set], resources=resources, raise_on_error=False,
        run_config=run_config(training_set=TrainingSetConfig(context=other, data=data)),
    )
    assert not refused.success
    assert "not granted to this tenant" in JobStore(env["state"]).get("other-tenant", other.job_id).error


def test_a_run_launched_without_a_job_id_registers_itself_as_a_job_of_the_tenant(env):
    """As from the Dagster UI's launchpad: the tenant and the job's settings, no context.job_id; the
    run's kind comes from its Dagster job's tag. Both assets of the run resolve one job record."""
    from resources.jobs.specs import JobContext
    from resources.vocabulary import RUN_KIND

    launchpad = JobContext(tenant_id=TENANT)  # requested_by defaults to "dagster-ui"
    result = dg.materialize(
        [training_set, trained_model], resources=env, tags={RUN_KIND: "training"},
        run_config=run_config(
            training_set=TrainingSetConfig(context=launchpad, data=DataSpec(train_path="bc/all.parquet", target_column="target")),
            trained_model=TrainedModelConfig(context=launchpad, model_name="bc_ui",
                                             trainer=TrainerSpec(estimator="logistic_regression")),
        ),
    )
    assert result.success
    [job] = [j for j in JobStore(env["state"]).list(TENANT, kind="training") if j.dagster_run_id == result.run_id]
    assert job.submitted_by == "dagster-ui" and job.result["model_id"] == result.output_for_node("trained_model")["model_id"]
    assert result.output_for_node("training_set") is not None
    metadata = result.asset_materializations_for_node("trained_model")[0].metadata
    assert metadata["job_id"].value == job.job_id and metadata["version"].value == job.result["version"]
    assert "val_accuracy" in metadata and metadata["tenant"].value == TENANT
    # and a tenant id that is not one fails the run before anything is stored
    bad = JobContext(tenant_id="../other")
    failed = dg.materialize([training_set], resources=env, tags={RUN_KIND: "training"}, raise_on_error=False,
                            run_config=run_config(training_set=TrainingSetConfig(
                                context=bad, data=DataSpec(train_path="bc/all.parquet", target_column="target"))))
    assert not failed.success
