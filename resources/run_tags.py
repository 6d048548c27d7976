"""Tags every platform run carries: the names the API, the pipelines and the run queue share.

- ``mlservice/tenant``, ``mlservice/job_id``, ``mlservice/kind``: who asked and which job record
  the run belongs to (the API finds a daemon-launched run by its job id tag).
- ``mlservice/pool=compute`` (job-level tag of training and tuning): the pool limited to
  ``max_concurrent_runs - 1`` runs, so a slot always stays for materializations.
- ``mlservice/compute_tenant`` (training and tuning runs): limited per value to
  ``tenant_max_concurrent_runs``, so one tenant's big jobs leave room for the others' while its
  own scheduled materializations still start.
- ``dagster/max_runtime`` (seconds): Dagster's run monitoring fails a run past it.
"""

from __future__ import annotations

TENANT, JOB_ID, KIND = "mlservice/tenant", "mlservice/job_id", "mlservice/kind"
POOL, COMPUTE_POOL = "mlservice/pool", "compute"
COMPUTE_TENANT = "mlservice/compute_tenant"
MAX_RUNTIME = "dagster/max_runtime"
COMPUTE_KINDS = frozenset({"training", "tuning"})


def max_runtime_tags(max_run_minutes: float | None) -> dict[str, str]:
    return {MAX_RUNTIME: str(max(1, round(max_run_minutes * 60)))} if max_run_minutes else {}


def job_run_tags(tenant_id: str, job_id: str, kind: str, max_run_minutes: float | None) -> dict[str, str]:
    """The tags of a run launched for a job record (by the API or a schedule)."""
    tags = {TENANT: tenant_id, JOB_ID: job_id, KIND: kind}
    if kind in COMPUTE_KINDS:
        tags[COMPUTE_TENANT] = tenant_id
    return {**tags, **max_runtime_tags(max_run_minutes)}
