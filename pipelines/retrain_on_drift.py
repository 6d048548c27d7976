"""The ``retrain_on_drift`` sensor: drift that holds launches the model's own training again.

It reads the drift reports written since its cursor (``drift_reports`` table, the ids of the
``drift_report`` asset's runs) and, for a model whose policy (``PUT /monitoring/{id}/policy``) has
``retrain_on_drift``, asks for a run when the model's last ``consecutive_reports`` reports all
drifted, none of them older than the last report that triggered, and the cooldown since the last
trigger has passed. The run is the version's own training (or tuning) job, with the run config the
Dagster instance kept for it and a new job record of the tenant (listed by ``GET /api/v1/jobs``,
submitted by this sensor); the policy's ``promote`` says where the new version goes. The run key
(``retrain:<tenant>:<model>:<report id>``), the job's idempotency key and the policy's
compare-and-set of the triggering report make sure the same reports never launch twice. The
tenant's quotas hold as for a job it submits (a free job slot, room for one more version); a
retraining that does not fit is skipped (logged) and the next drifted report tries again.
"""

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg

from mlservice.config.settings import Settings
from pipelines.jobs import training_job, tuning_job
from resources.dagster_resources import ModelRegistry
from resources.infra.state_db import StateStore, as_utc
from resources.jobs.records import JobStore
from resources.monitoring.drift_history import DriftReportRecord, DriftReportStore
from resources.monitoring.policies import PolicyRecord, PolicyStore
from resources.vocabulary import RUN_JOB_ID, T_JOB_ID, job_run_tags

log = logging.getLogger("mlservice.retrain_on_drift")
SENSOR_NAME = "retrain_on_drift"
SUBMITTER = f"sensor:{SENSOR_NAME}"
REPORTS_PER_TICK = 500
_ASSET_OF_KIND = {"training": "trained_model", "tuning": "tuned_model"}
_JOB_OF_KIND = {"training": training_job.name, "tuning": tuning_job.name}


def is_due(policy: PolicyRecord, recent: list[DriftReportRecord], now: datetime) -> bool:
    """Drift held for the policy's number of reports in a row, none of them already acted on, and
    the cooldown has passed. ``recent``: the model's latest reports, newest first."""
    streak = recent[: policy.consecutive_reports]
    if len(streak) < policy.consecutive_reports or not all(r.status == "ok" and r.overall_drift for r in streak):
        return False
    if policy.last_trigger_report_id is not None and min(r.id for r in streak) <= policy.last_trigger_report_id:
        return False
    if policy.last_triggered_at is not None and now - as_utc(policy.last_triggered_at) < timedelta(hours=policy.cooldown_hours):
        return False
    return True


def training_run_of(instance: dg.DagsterInstance, registry: ModelRegistry, jobs: JobStore, report: DriftReportRecord,
                    ) -> tuple[Any, dict[str, Any]] | None:
    """(the job record, the Dagster run config) of the job that trained the report's version, or
    None when the version was not trained here (registered from elsewhere) or its run is gone."""
    if report.version is None:
        return None
    resolved = registry.resolve_version(report.tenant_id, report.model_id, report.version)
    run_id = registry.run_id_of(resolved)
    with registry._mlflow_errors():
        job_id = registry.client.get_run(run_id).data.tags.get(T_JOB_ID) if run_id else None
    if not job_id:
        return None
    job = jobs.get(report.tenant_id, job_id)
    run = instance.get_run_by_id(job.dagster_run_id) if job.dagster_run_id else None
    if run is None:
        runs = instance.get_runs(filters=dg.RunsFilter(tags={RUN_JOB_ID: job_id}), limit=1)
        run = runs[0] if runs else None
    return (job, run.run_config) if run is not None and run.run_config else None


def retraining_config(run_config: dict[str, Any], kind: str, job_id: str, promote: str) -> dict[str, Any]:
    """The original run config with the new job's context in every step and the policy's ``promote``."""
    ops = {name: {"config": {**step["config"]}} for name, step in run_config.get("ops", {}).items()}
    for step in ops.values():
        if "context" in step["config"]:
            step["config"]["context"] = {**step["config"]["context"], "job_id": job_id, "requested_by": SUBMITTER}
    ops[_ASSET_OF_KIND[kind]]["config"]["promote"] = promote
    return {**run_config, "ops": ops}


def build_retrain_sensor(interval_s: int = 60) -> dg.SensorDefinition:
    @dg.sensor(name=SENSOR_NAME, minimum_interval_seconds=interval_s, default_status=dg.DefaultSensorStatus.RUNNING,
               jobs=[training_job, tuning_job],
               description="Launches a model's training job again when its drift reports say drift held (per-model policy)")
    def retrain_on_drift(context: dg.SensorEvaluationContext, state: StateStore, registry: ModelRegistry):
        return evaluate(context, state, registry)

    return retrain_on_drift


def evaluate(context: dg.SensorEvaluationContext, state: StateStore, registry: ModelRegistry):
    """One tick: the run requests for models whose drift held, and the new cursor."""
    from resources.errors import DomainError

    reports = DriftReportStore(state).after(int(context.cursor or 0), limit=REPORTS_PER_TICK)
    if not reports:
        return dg.SkipReason("no new drift report")
    policies = PolicyStore(state)
    latest: dict[tuple[str, str], DriftReportRecord] = {}
    for report in reports:  # ascending: the newest report of each model wins
        latest[(report.tenant_id, report.model_id)] = report
    now = datetime.now(UTC)
    requests = []
    for (tenant, model_id), report in latest.items():
        policy = policies.get(tenant, model_id)
        if policy is None or not policy.retrain_on_drift:
            continue
        if not is_due(policy, DriftReportStore(state).recent(tenant, model_id, policy.consecutive_reports), now):
            continue
        try:
            request = _retraining_request(context.instance, registry, state, report, policy, now)
        except DomainError as exc:
            log.warning("no retraining for %s/%s: %s", tenant, model_id, exc.message)
            continue
        if request is not None:
            requests.append(request)
    return dg.SensorResult(run_requests=requests, cursor=str(reports[-1].id))


def _has_room(registry: ModelRegistry, jobs: JobStore, report: DriftReportRecord) -> bool:
    """The tenant's quotas hold for the retraining as for a job it submits: a free job slot (its
    unfinished jobs, as the table knows them) and room for one more version of the model."""
    from mlservice.config.wiring import build_quotas
    from resources.errors import JobLimitReached, QuotaExceeded
    from resources.vocabulary import UNFINISHED_STATUSES

    quotas, tenant = build_quotas(Settings()), report.tenant_id
    try:
        quotas.check(tenant, "concurrent_jobs",
                     lambda limit: sum(len(jobs.list(tenant, status=s, limit=limit)) for s in UNFINISHED_STATUSES))
        quotas.check(tenant, "versions_per_model", lambda _: len(registry.list_versions(tenant, report.model_id)))
    except (JobLimitReached, QuotaExceeded) as exc:
        log.warning("no retraining for %s/%s: %s", tenant, report.model_id, exc.message)
        return False
    return True


def _retraining_request(instance: dg.DagsterInstance, registry: ModelRegistry, state: StateStore, report: DriftReportRecord,
                        policy: PolicyRecord, now: datetime) -> dg.RunRequest | None:
    jobs = JobStore(state)
    found = training_run_of(instance, registry, jobs, report)
    if found is None:
        log.warning("no retraining for %s/%s: version %s was not trained by a job of the platform",
                    report.tenant_id, report.model_id, report.version)
        return None
    original, run_config = found
    run_key = f"retrain:{report.tenant_id}:{report.model_id}:{report.id}"
    request = {**original.request, "retrain": {"drift_report_id": report.id, "version": report.version,
                                               "promote": policy.promote, "from_job": original.job_id}}
    if original.kind not in _JOB_OF_KIND or not _has_room(registry, jobs, report):
        return None
    record, created = jobs.create(report.tenant_id, kind=original.kind, request=request, submitted_by=SUBMITTER,
                                  model_name=original.model_name, idempotency_key=run_key)
    if not PolicyStore(state).record_trigger(report.tenant_id, report.model_id, report_id=report.id, job_id=record.job_id,
                                             at=now):
        if created:
            jobs.delete(record.job_id)  # another tick recorded this trigger first: no job that never runs
        return None
    return dg.RunRequest(
        run_key=run_key, job_name=_JOB_OF_KIND[original.kind],
        run_config=retraining_config(run_config, original.kind, record.job_id, policy.promote),
        tags=job_run_tags(report.tenant_id, record.job_id, original.kind, Settings().max_run_minutes_for(report.tenant_id)),
    )
