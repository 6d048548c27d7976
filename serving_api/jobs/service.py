"""Submitting, reading and cancelling asynchronous jobs: the management path of the API.

validate -> job record (idempotent) -> the tenant's unfinished jobs within its quota (429
JOB_LIMIT_REACHED, the record removed again) -> launch the Dagster job by name over GraphQL with
run config and tags {tenant, job id, kind, ``dagster/max_runtime``} -> 202. Reads take the live
status from the Dagster run and write terminal states back to the job record.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from mlservice.config.wiring import build_dagster_runs, build_data_policy, build_job_store, build_quotas, build_ray_cluster
from resources import vocabulary
from resources.data.access import DataAccessPolicy
from resources.errors import DependencyUnavailable, DomainError, InvalidRequest
from resources.infra.dagster_runs import DagsterRuns
from resources.infra.ray_cluster import RayCluster
from resources.infra.state_db import utcnow
from resources.jobs.records import JobRecord, JobStore
from resources.jobs.specs import JobContext
from resources.models.registry import ModelRegistry
from resources.tenants.quotas import TenantQuotas, models_held
from serving_api.auth import Principal

if TYPE_CHECKING:
    from mlservice.config.settings import Settings
    from resources.infra.state_db import StateStore


LAUNCH_GRACE = timedelta(minutes=5)  # a record with no Dagster run after this was never launched
MAX_LISTED = 10_000  # unfinished records of one tenant read per check (far above any quota)


class JobAlreadyFinished(DomainError):
    code = "JOB_ALREADY_FINISHED"


class JobService:
    @classmethod
    def from_settings(cls, settings: Settings, state: StateStore, registry: ModelRegistry) -> JobService:
        """The API's jobs: runs launched with the maximum runtime tag, unfinished jobs within the quota."""

        return cls(
            jobs=build_job_store(state), runs=build_dagster_runs(settings), ray=build_ray_cluster(settings),
            policy=build_data_policy(settings), registry=registry, dagster_ui_url=settings.effective_dagster_url,
            quotas=build_quotas(settings), max_run_minutes=settings.max_run_minutes_for,
        )

    def __init__(
        self, *, jobs: JobStore, runs: DagsterRuns, ray: RayCluster, policy: DataAccessPolicy,
        registry: ModelRegistry, dagster_ui_url: str, quotas: TenantQuotas | None = None,
        max_run_minutes: Callable[[str], float] | None = None,
    ):
        """``quotas`` None: unlimited; ``max_run_minutes`` (tenant -> minutes) None: runs carry no maximum runtime."""
        self.jobs, self.runs, self.ray, self.policy, self.registry = jobs, runs, ray, policy, registry
        self.dagster_ui_url, self.quotas = dagster_ui_url, quotas
        self.max_run_minutes = max_run_minutes

    # -- checks before anything is stored ---------------------------------------------------------
    def check_data_paths(self, tenant_id: str, *paths: str | None) -> None:
        """Each path allowed (400) and present, locally or on S3 (400), before a job is launched."""
        from resources.data.storage import exists

        for path in paths:
            if path is None:
                continue
            location = self.policy.resolve(tenant_id, path)
            try:
                present = exists(location, self.policy)
            except OSError as exc:  # S3 unreachable, access denied
                raise InvalidRequest(f"data path cannot be read: {str(exc)[:200]}", {"path": path}) from None
            if not present:
                raise InvalidRequest("data path does not exist", {"path": path})

    def check_gpu(self, use_gpu: bool) -> None:
        if use_gpu and self.ray.total_resources().get("GPU", 0) < 1:
            raise InvalidRequest("use_gpu is true but the Ray cluster has no GPU", {"use_gpu": True})

    def check_model_room(self, tenant_id: str, model_name: str) -> None:
        """409 QUOTA_EXCEEDED before a training or tuning job is launched whose model (or its next
        version) the registry would refuse after the fit. Registration checks again (authoritative)."""
        if self.quotas is None:
            return
        model = self.registry.find_by_name(tenant_id, model_name)
        if model is None:
            self.quotas.check(tenant_id, "models", lambda up_to: models_held(self.registry, tenant_id, up_to))
        else:
            self.quotas.check(tenant_id, "versions_per_model",
                              lambda _: len(self.registry.list_versions(tenant_id, model.model_id)))

    # -- submit / read / cancel -----------------------------------------------------------------
    def submit(
        self, principal: Principal, *, kind: str, job_name: str, model_name: str | None, request: dict[str, Any],
        idempotency_key: str | None, run_config: Callable[[JobContext], dict[str, Any]], needs_ray: bool = True,
        deployment_id: str | None = None,
    ) -> JobRecord:
        if needs_ray:
            self.ray.ensure_reachable()  # 503 RAY_UNAVAILABLE before anything is stored
        record, created = self.jobs.create(
            principal.tenant_id, kind=kind, request=request, submitted_by=principal.subject,
            model_name=model_name, idempotency_key=idempotency_key,
        )
        if not created:
            return record
        try:  # counted with this record in the table: two racing submits can never both pass the quota
            self._check_job_slots(principal.tenant_id, record.job_id)
        except DomainError:
            self.jobs.delete(record.job_id)
            raise
        context = JobContext(tenant_id=principal.tenant_id, job_id=record.job_id, requested_by=principal.subject)
        minutes = self.max_run_minutes(principal.tenant_id) if self.max_run_minutes is not None else None
        tags = vocabulary.job_run_tags(principal.tenant_id, record.job_id, kind, minutes, deployment_id)
        try:
            run_id = self.runs.launch(job_name, run_config(context), tags)
        except Exception:
            self.jobs.delete(record.job_id)  # nothing was started: the same request may be retried
            raise
        self.jobs.record_run_state(record.job_id, dagster_run_id=run_id)
        return self.jobs.get(principal.tenant_id, record.job_id)

    def _check_job_slots(self, tenant_id: str, new_job_id: str) -> None:
        """429 JOB_LIMIT_REACHED when the tenant's other unfinished jobs fill its quota. A record
        still unfinished in the table is refreshed from its Dagster run before it counts (a run that
        ended frees its slot), and one never launched (no run after ``LAUNCH_GRACE``) does not count."""
        if self.quotas is None:
            return
        others = [r for status in vocabulary.UNFINISHED_STATUSES for r in self.jobs.list(tenant_id, status=status, limit=MAX_LISTED)
                  if r.job_id != new_job_id]

        def count(limit: int) -> int:
            if len(others) < limit:
                return len(others)  # room without asking Dagster
            held = 0
            for record in others:
                held += self._holds_slot(self.refresh(record))
                if held >= limit:
                    break
            return held

        self.quotas.check(tenant_id, "concurrent_jobs", count)

    @staticmethod
    def _holds_slot(record: JobRecord) -> bool:
        return not record.terminal and (record.dagster_run_id is not None or utcnow() - record.created_at < LAUNCH_GRACE)

    def get(self, tenant_id: str, job_id: str, kind: str | None = None) -> JobRecord:
        return self.refresh(self.jobs.get(tenant_id, job_id, kind))

    def list(self, tenant_id: str, **filters: Any) -> list[JobRecord]:
        return [self.refresh(r) for r in self.jobs.list(tenant_id, **filters)]

    def refresh(self, record: JobRecord) -> JobRecord:
        if record.terminal:
            return record
        run_id = record.dagster_run_id
        try:
            if not run_id:
                # a job whose run the Dagster daemon launched (a schedule): find it by its tag
                run_id = self.runs.run_id_by_tag(vocabulary.RUN_JOB_ID, record.job_id)
                if run_id is None:
                    return record
            state = self.runs.state(run_id)
        except DependencyUnavailable:
            return record  # reads keep answering with the last known state while Dagster is away
        if state is None:
            return record
        run_error = None
        if state.status == "failed" and not record.run_error:
            try:
                run_error = self.runs.failure_message(run_id) or "the run failed"
            except DependencyUnavailable:
                run_error = "the run failed"
        self.jobs.record_run_state(record.job_id, dagster_run_id=run_id, status=state.status, started_at=state.started_at,
                                   finished_at=state.finished_at, run_error=run_error)
        refreshed = self.jobs.get(record.tenant_id, record.job_id)
        self._after_end(refreshed)
        return refreshed

    def _after_end(self, record: JobRecord) -> None:
        """A batch job that failed or was cancelled leaves no staging files, even when its run
        worker died before it could remove them (its own cleanup is the first line)."""
        if record.kind == "batch_prediction" and record.status in ("failed", "cancelled"):
            from resources.data.staged_output import discard_job_staging

            discard_job_staging(self.policy, record.tenant_id, record.request.get("output_path"), record.job_id)

    def cancel(self, tenant_id: str, job_id: str, kind: str) -> JobRecord:
        record = self.get(tenant_id, job_id, kind)
        if record.terminal:
            raise JobAlreadyFinished(f"job '{job_id}' already ended ({record.status})", {"status": record.status})
        if record.dagster_run_id:
            self.runs.terminate(record.dagster_run_id)
        self.jobs.record_run_state(job_id, status="cancelled", finished_at=utcnow(), run_error="cancelled by request")
        cancelled = self.jobs.get(tenant_id, job_id)
        self._after_end(cancelled)
        return cancelled

    def run_url(self, record: JobRecord) -> str | None:
        return self.runs.run_url(self.dagster_ui_url, record.dagster_run_id) if record.dagster_run_id else None

    def public(self, record: JobRecord) -> dict[str, Any]:
        return {
            "job_id": record.job_id, "kind": record.kind, "status": record.status, "model_name": record.model_name,
            "created_at": record.created_at, "started_at": record.started_at, "finished_at": record.finished_at,
            "updated_at": record.updated_at, "dagster_run_id": record.dagster_run_id,
            "dagster_run_url": self.run_url(record), "error": record.reason,
            "result": {k: v for k, v in record.result.items() if k != "trials"},
            "submitted_by": record.submitted_by,
        }

    def duration_minutes(self, record: JobRecord) -> float | None:
        if record.started_at is None:
            return None
        end = record.finished_at or utcnow()
        return round((end - record.started_at).total_seconds() / 60, 2)

    def live_metrics(self, record: JobRecord) -> dict[str, float]:
        """Latest value of every metric of the job's MLflow run (progress while it runs)."""
        run_id = record.result.get("mlflow_run_id")
        if not run_id:
            return {}
        try:
            return dict(self.registry.client.get_run(run_id).data.metrics)
        except Exception:
            return {}
