"""Jobs the API launches by name through GraphQL (and people launch from the Dagster UI)."""

from __future__ import annotations

import dagster as dg

from assets.deployments.assets import model_deployment
from assets.features.assets import online_features
from assets.scoring.assets import batch_predictions
from assets.training.assets import trained_model, training_set
from assets.tuning.assets import tuned_model
from resources import vocabulary
from resources.features.materialization_spec import FEATURE_MATERIALIZATION_JOB
from resources.jobs.specs import BATCH_SCORING_JOB, DEPLOY_JOB, TRAINING_JOB, TUNING_JOB

# The run queue keeps one slot free of this pool (mlservice/launcher/dagster_instance.py): heavy jobs only.
COMPUTE_POOL_TAGS = {vocabulary.RUN_POOL: vocabulary.COMPUTE_POOL}

# Every job runs its steps in the run worker (in_process_executor): the steps of one job run one
# after another anyway, the compute is Ray's, and a step subprocess costs seconds to start. And
# the run worker is then the whole run: should it die (SIGKILL, OOM), nothing of the run lives on
# (nobody stops the step process of a multiprocess executor whose run worker died: it could go on
# and register a version of a run Dagster has failed), and Ray ends the tasks the worker drove.
training_job = dg.define_asset_job(
    TRAINING_JOB,
    selection=dg.AssetSelection.assets(training_set, trained_model),
    description="Read and split the training data, fit on Ray, log to MLflow, register a new version",
    tags={vocabulary.RUN_KIND: "training", **COMPUTE_POOL_TAGS},
    executor_def=dg.in_process_executor,
)

tuning_job = dg.define_asset_job(
    TUNING_JOB,
    selection=dg.AssetSelection.assets(training_set, tuned_model),
    description="Hyperparameter search on Ray Tune; the best model is registered as a new version",
    tags={vocabulary.RUN_KIND: "tuning", **COMPUTE_POOL_TAGS},
    executor_def=dg.in_process_executor,
)

feature_materialization_job = dg.define_asset_job(
    FEATURE_MATERIALIZATION_JOB,
    selection=dg.AssetSelection.assets(online_features),
    description="Load a tenant's feature views from the offline store into the online store (Feast)",
    tags={vocabulary.RUN_KIND: "materialization"},
    executor_def=dg.in_process_executor,  # small steps that share the tenant's registry: one process, in order
)

batch_scoring_job = dg.define_asset_job(
    BATCH_SCORING_JOB,
    selection=dg.AssetSelection.assets(batch_predictions),
    description="Score a parquet input with one model version on Ray Data; output all-or-nothing with a _SUCCESS manifest",
    tags={vocabulary.RUN_KIND: "batch_prediction", **COMPUTE_POOL_TAGS},
    # one step: run it in the run worker (a step subprocess costs seconds of start-up and exit, and
    # the parallelism is Ray Data's)
    executor_def=dg.in_process_executor,
)

deploy_model_job = dg.define_asset_job(
    DEPLOY_JOB,
    selection=dg.AssetSelection.assets(model_deployment),
    description="Apply a deployment's desired state to Ray Serve (or delete its application); the run is the Serve driver",
    tags={vocabulary.RUN_KIND: "deployment"},
    executor_def=dg.in_process_executor,  # one step that waits on Serve: no step process
)

ALL_JOBS = [training_job, tuning_job, feature_materialization_job, batch_scoring_job, deploy_model_job]
