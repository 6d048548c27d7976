"""Deployments as a Dagster asset: each change of a deployment's desired state is a run of the
``deploy_model`` job whose process is the Ray driver that applies it to Ray Serve.

Thin: config in, ``run_deployment`` called, ``Output`` with what Serve reported. Downstream of the
trained and tuned models in the lineage (a deployment serves one of their versions); the drift
reports read what its replicas log.
"""

from typing import Any

import dagster as dg

from resources.dagster_resources import RayCluster, StateStore
from resources.jobs.records import JobStore
from resources.jobs.specs import DeploymentConfig


@dg.asset(
    group_name="serving",
    description="A model version served on Ray Serve: replicas (fixed or autoscaled) behind a router, an optional "
                "canary; every change applied by one run of deploy_model",
    deps=[dg.AssetKey("trained_model"), dg.AssetKey("tuned_model")],
)
def model_deployment(
    context: dg.AssetExecutionContext, config: DeploymentConfig, ray_cluster: RayCluster, state: StateStore,
) -> dg.Output[dict]:
    from assets.deployments.run import DeploymentFailed, run_deployment
    from mlservice.config.settings import Settings
    from resources.deployments.store import DeploymentStore

    jobs = JobStore(state)
    try:
        result = run_deployment(config, DeploymentStore(state), ray_cluster, Settings(), log=context.log.info)
    except DeploymentFailed as exc:
        jobs.record_outcome(config.context.job_id, error=str(exc), result=exc.result)
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    jobs.record_outcome(config.context.job_id, result=result)
    metadata: dict[str, Any] = {k: v for k, v in result.items() if isinstance(v, str | int | float) and v is not None}
    return dg.Output(result, metadata=metadata)
