"""The names the API, the pipelines, the launcher and the tests share, defined once.

Literals are the types (schemas and Dagster configs use them); the tuples are derived from them.
Job names live next to their run configs (``resources.jobs.specs``, ``resources.features.materialization_spec``)
and feature view names in ``resources.features.demo_names``.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import BeforeValidator

# -- models ------------------------------------------------------------------------------------
Stage = Literal["development", "staging", "production", "archived"]
STAGES: tuple[str, ...] = get_args(Stage)
# Where a retrained version goes (a monitoring policy's ``promote``).
Promote = Literal["none", "staging", "production_if_better"]
PROMOTE_CHOICES: tuple[str, ...] = get_args(Promote)
ModelType = Literal["classification", "regression"]
MODEL_TYPES: tuple[str, ...] = get_args(ModelType)
Framework = Literal["sklearn", "pytorch", "xgboost", "lightgbm", "onnx", "custom"]  # what a registered model may say
FRAMEWORKS: tuple[str, ...] = get_args(Framework)
TrainableFramework = Literal["sklearn", "pytorch"]  # what the training jobs fit
TRAINABLE_FRAMEWORKS: tuple[str, ...] = get_args(TrainableFramework)
FRAMEWORK_ALIASES = {"torch": "pytorch", "scikit-learn": "sklearn"}  # the names users give the packages


def canonical_framework(value: object) -> object:
    """A framework as the platform names it (``torch`` -> ``pytorch``); anything else unchanged, for the check to refuse."""
    return FRAMEWORK_ALIASES.get(value, value) if isinstance(value, str) else value


FrameworkName = Annotated[Framework, BeforeValidator(canonical_framework)]
TrainableFrameworkName = Annotated[TrainableFramework, BeforeValidator(canonical_framework)]

# -- jobs --------------------------------------------------------------------------------------
OnInvalid = Literal["fail", "skip"]  # a batch scoring job's rows that do not fit the signature
ON_INVALID_CHOICES: tuple[str, ...] = get_args(OnInvalid)
JobKind = Literal["training", "tuning", "batch_prediction", "materialization", "drift_report", "deployment"]
JOB_KINDS: tuple[str, ...] = get_args(JobKind)
JobStatus = Literal["submitted", "queued", "running", "succeeded", "failed", "cancelled"]
JOB_STATUSES: tuple[str, ...] = get_args(JobStatus)
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
UNFINISHED_STATUSES: tuple[str, ...] = tuple(s for s in JOB_STATUSES if s not in TERMINAL_STATUSES)

# -- deployments ---------------------------------------------------------------------------------
Runtime = Literal["ray_serve"]
RUNTIMES: tuple[str, ...] = get_args(Runtime)
# deploying: first applied; running: Serve reports every replica of the desired state up;
# updating: a change is being applied; degraded: serving, but not as desired (replicas missing, a
# failed roll-out kept the old version); failed: not serving; deleting: removal under way.
DeploymentStatus = Literal["deploying", "running", "updating", "degraded", "failed", "deleting"]
DEPLOYMENT_STATUSES: tuple[str, ...] = get_args(DeploymentStatus)
DeploymentAction = Literal["apply", "delete"]  # what a deploy_model run does with the desired state

# -- MLflow tags (registered models, versions and runs) -----------------------------------------
TAG = "mlservice."
T_TENANT, T_MODEL_ID, T_NAME = TAG + "tenant", TAG + "model_id", TAG + "name"
T_TYPE, T_FRAMEWORK = TAG + "model_type", TAG + "framework"
T_CURRENT, T_STAGE, T_SEMVER = TAG + "current_version", TAG + "stage", TAG + "semver"
T_LATEST, T_CREATED_BY = TAG + "latest_version", TAG + "created_by"
T_JOB_ID = TAG + "job_id"  # runs: the API job that trained them
T_FEATURE_SERVICE = TAG + "feature_service"  # version (and run): the feature service it was trained from
PRODUCTION_ALIAS = "production"
# The run artifact holding a version's drift reference: a seeded sample of its training features
# (assets/training writes it, mlservice/monitoring/ reads it).
REFERENCE_ARTIFACT_DIR, REFERENCE_ARTIFACT_FILE = "monitoring", "reference.parquet"
# Run metrics: the best epoch's figures are logged once more as final_<name> (monitoring reads final_val_*).
FINAL_METRIC_PREFIX = "final_"

# -- Dagster run tags ---------------------------------------------------------------------------
# mlservice/tenant, job_id, kind: who asked and which job record a run belongs to (the API finds
# a daemon-launched run by its job id tag). mlservice/pool=compute (job-level tag of training and
# tuning): the pool limited to max_concurrent_runs - 1 runs, so a slot always stays for
# materializations. mlservice/compute_tenant (training, tuning and batch scoring runs): limited per value to
# tenant_max_concurrent_runs. dagster/max_runtime (seconds): Dagster's run monitoring fails a run
# past it.
RUN_TENANT, RUN_JOB_ID, RUN_KIND = "mlservice/tenant", "mlservice/job_id", "mlservice/kind"
RUN_POOL, COMPUTE_POOL = "mlservice/pool", "compute"
RUN_COMPUTE_TENANT = "mlservice/compute_tenant"
RUN_DEPLOYMENT = "mlservice/deployment"  # deploy_model runs: the deployment id (the reconciler skips one with a run in flight)
RUN_MAX_RUNTIME = "dagster/max_runtime"
COMPUTE_KINDS = frozenset({"training", "tuning", "batch_prediction"})


def max_runtime_tags(max_run_minutes: float | None) -> dict[str, str]:
    return {RUN_MAX_RUNTIME: str(max(1, round(max_run_minutes * 60)))} if max_run_minutes else {}


def job_run_tags(tenant_id: str, job_id: str, kind: str, max_run_minutes: float | None,
                 deployment_id: str | None = None) -> dict[str, str]:
    """The tags of a run launched for a job record (by the API, a schedule or a sensor)."""
    tags = {RUN_TENANT: tenant_id, RUN_JOB_ID: job_id, RUN_KIND: kind}
    if deployment_id is not None:
        tags[RUN_DEPLOYMENT] = deployment_id
    if kind in COMPUTE_KINDS:
        tags[RUN_COMPUTE_TENANT] = tenant_id
    return {**tags, **max_runtime_tags(max_run_minutes)}
