"""The ``deployment_reconciler`` sensor: desired state (the deployments table) against what Ray
Serve reports (the dashboard's REST API; the sensor never becomes a Ray driver), repaired by
``deploy_model`` runs. ``resources.deployments.reconcile.decide`` says what to do with each
deployment, and ``judge_canary`` whether a running canary is rolled back or promoted (from the
traffic the API counted per version, ``resources.deployments.traffic``); this module reads the inputs and
acts: a run (with a job record of the deployment's tenant, submitted by this sensor, listed by
``GET /api/v1/jobs``) to apply or delete, or a status written back. After a platform restart (Ray
restarted, Serve empty) every deployment that should run is applied again by itself.

No deployments: no HTTP call. Ray unreachable: the tick is skipped (nothing is marked failed
because the cluster is away).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import dagster as dg

from pipelines.jobs import deploy_model_job
from resources.dagster_resources import RayCluster, StateStore
from resources.deployments.reconcile import canary_window_start, decide, judge_canary
from resources.deployments.store import DeploymentRecord, DeploymentStore
from resources.deployments.traffic import KEEP_DAYS, TrafficStore
from resources.errors import RayUnavailable
from resources.jobs.records import JobStore
from resources.jobs.specs import DeploymentConfig, run_config
from resources.vocabulary import RUN_DEPLOYMENT, job_run_tags

log = logging.getLogger("mlservice.deployment_reconciler")
SENSOR_NAME = "deployment_reconciler"
SUBMITTER = f"sensor:{SENSOR_NAME}"
MAX_DEPLOYMENTS = 1000  # per tick
IN_FLIGHT = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
             dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]


def build_deployment_reconciler(interval_s: int = 30) -> dg.SensorDefinition:
    @dg.sensor(name=SENSOR_NAME, minimum_interval_seconds=interval_s, default_status=dg.DefaultSensorStatus.RUNNING,
               job=deploy_model_job,
               description="Compares deployments' desired state with what Ray Serve reports and repairs it with deploy_model runs")
    def deployment_reconciler(context: dg.SensorEvaluationContext, state: StateStore, ray_cluster: RayCluster):
        return evaluate(context, state, ray_cluster)

    return deployment_reconciler


def _in_flight(instance: dg.DagsterInstance) -> set[str]:
    runs = instance.get_runs(filters=dg.RunsFilter(job_name=deploy_model_job.name, statuses=IN_FLIGHT), limit=MAX_DEPLOYMENTS)
    return {run.tags[RUN_DEPLOYMENT] for run in runs if RUN_DEPLOYMENT in run.tags}


def evaluate(context: dg.SensorEvaluationContext, state: StateStore, ray_cluster: RayCluster):
    store = DeploymentStore(state)
    records = store.list(None, limit=MAX_DEPLOYMENTS)
    if not records:
        return dg.SkipReason("no deployments")
    try:
        apps = ray_cluster.serve_applications()
    except RayUnavailable as exc:
        return dg.SkipReason(f"Ray is unreachable, nothing changed: {exc}")
    busy = _in_flight(context.instance)
    traffic = TrafficStore(state)
    now = datetime.now(UTC)
    traffic.prune(now - timedelta(days=KEEP_DAYS))
    requests = []
    for record in records:
        decision = decide(record, apps.get(record.app_name), run_in_flight=record.deployment_id in busy,
                          canary_app=apps.get(record.app_of("canary")))
        window_start = canary_window_start(record.canary) if record.canary else None
        if decision.action == "none" and window_start is not None and record.deployment_id not in busy:
            decision = judge_canary(record, traffic.since(record.deployment_id, window_start), now)
        if decision.action == "none":
            continue
        log.info("deployment %s (%s): %s %s", record.deployment_id, record.status, decision.action, decision.message or "")
        if decision.action == "remove":
            store.remove(record.deployment_id)
        elif decision.action == "observe":
            store.observe(record.deployment_id, status=decision.status or record.status, reason=decision.reason,
                          event="reconciled", message=decision.message, failed=decision.failed)
        elif decision.action in ("rollback", "promote"):
            changed = _settle_canary(store, record, decision)
            if changed is not None:
                requests.append(_run_request(state, store, changed, "apply", decision.message or ""))
        else:
            requests.append(_run_request(state, store, record, "delete" if decision.action == "delete" else "apply",
                                         decision.message or ""))
    return dg.SensorResult(run_requests=requests) if requests else dg.SkipReason("every deployment is as desired")


def _settle_canary(store: DeploymentStore, record: DeploymentRecord, decision) -> DeploymentRecord | None:
    """The canary ended in the desired state (rolled back: its traffic to the stable version;
    promoted: the stable version becomes the canary's), with the figures in the event."""
    from resources.errors import DomainError

    desired = {"canary": None}
    if decision.action == "promote":
        desired["version"] = record.canary["version"]
    try:
        return store.change(record.tenant_id, record.deployment_id, status="updating",
                            event=f"canary_{'rolled_back' if decision.action == 'rollback' else 'promoted'}",
                            message=decision.message or decision.action, details=decision.figures, **desired)
    except DomainError as exc:  # e.g. the canary's version got a deployment of its own meanwhile
        store.observe(record.deployment_id, status=record.status, event="canary_not_settled", message=exc.message)
        return None


def _run_request(state: StateStore, store: DeploymentStore, record: DeploymentRecord, action: str, why: str) -> dg.RunRequest:
    from mlservice.config.settings import Settings
    from resources.jobs.specs import JobContext

    job, _ = JobStore(state).create(
        record.tenant_id, kind="deployment", submitted_by=SUBMITTER, model_name=record.model_name,
        request={"deployment_id": record.deployment_id, "action": action, "generation": record.generation})
    store.observe(record.deployment_id, status=record.status, event="reconciler_run", message=why,
                  details={"job_id": job.job_id, "action": action})
    context = JobContext(tenant_id=record.tenant_id, job_id=job.job_id, requested_by=SUBMITTER)
    config = run_config(model_deployment=DeploymentConfig(context=context, deployment_id=record.deployment_id, action=action,
                                                          generation=record.generation))
    tags = job_run_tags(record.tenant_id, job.job_id, "deployment", Settings().max_run_minutes_for(record.tenant_id), record.deployment_id)
    return dg.RunRequest(run_key=f"reconcile:{record.deployment_id}:{job.job_id}", run_config=config, tags=tags)
