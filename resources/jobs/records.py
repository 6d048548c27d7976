"""Job records: every asynchronous job of the API (training, tuning, batch scoring,
materialization, drift reports), its tenant, request, idempotency key, Dagster run and outcome.

Status moves submitted -> queued -> running -> succeeded | failed | cancelled. The live status
comes from the Dagster run; terminal states are written back here, so a job's end survives the
run storage.

One writer per field:
- the API (``record_run_state``, from the Dagster run it launched or a cancel): ``status``,
  ``dagster_run_id``, ``started_at``, ``finished_at`` and ``run_error`` (why the run ended as it
  did: Dagster's failure message, a stop at the maximum runtime, "cancelled by request");
- the run (``record_outcome``, the job's assets): ``result`` (merged) and ``error`` (what the job's
  own code found wrong: a data problem, a bound);
- retention (``resources.retention``): clearing ``idempotency_key``.
A job's public error is ``error``, else ``run_error`` (``JobRecord.reason``).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from resources.errors import DomainError
from resources.infra.state_db import StateStore, UTCDateTime, metadata, utcnow
from resources.vocabulary import TERMINAL_STATUSES

JOB_ID_PATTERN = r"^[a-z]+-job-[0-9a-f]{12}$"  # what create() makes: a list cursor is one of these
_PREFIX = {"training": "train", "tuning": "tune", "batch_prediction": "batch", "materialization": "mat", "drift_report": "drift",
           "deployment": "deploy"}

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("job_id", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("model_name", sa.String(128), nullable=True),
    sa.Column("request", sa.Text, nullable=False),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("result", sa.Text, nullable=True),
    sa.Column("idempotency_key", sa.String(256), nullable=True),
    sa.Column("dagster_run_id", sa.String(64), nullable=True),
    sa.Column("error", sa.Text, nullable=True),  # the run's: what the job's code found wrong
    sa.Column("run_error", sa.Text, nullable=True),  # the API's: why the Dagster run ended as it did
    sa.Column("submitted_by", sa.String(256), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=True),
    sa.Column("finished_at", UTCDateTime(), nullable=True),
    sa.UniqueConstraint("tenant_id", "kind", "idempotency_key", name="uq_jobs_idempotency"),
    sa.Index("ix_jobs_tenant_kind_time", "tenant_id", "kind", "created_at"),
)


class JobNotFound(DomainError):
    code = "JOB_NOT_FOUND"

    def __init__(self, job_id: str):
        super().__init__(f"job '{job_id}' not found", {"job_id": job_id})


class IdempotencyConflict(DomainError):
    code = "IDEMPOTENCY_CONFLICT"


@dataclass
class JobRecord:
    job_id: str
    tenant_id: str
    kind: str
    status: str
    model_name: str | None
    request: dict[str, Any]
    result: dict[str, Any]
    dagster_run_id: str | None
    error: str | None
    submitted_by: str
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    run_error: str | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def reason(self) -> str | None:
        """Why the job failed or stopped: its own code's error, else the run's."""
        return self.error or self.run_error


def request_hash(request: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()


class JobStore:
    def __init__(self, state: StateStore) -> None:
        self.state = state

    def _row_to_record(self, row: Any) -> JobRecord:
        return JobRecord(
            job_id=row["job_id"], tenant_id=row["tenant_id"], kind=row["kind"], status=row["status"],
            model_name=row["model_name"], request=json.loads(row["request"]), result=json.loads(row["result"] or "{}"),
            dagster_run_id=row["dagster_run_id"], error=row["error"], submitted_by=row["submitted_by"],
            created_at=row["created_at"], updated_at=row["updated_at"],
            started_at=row["started_at"], finished_at=row["finished_at"], run_error=row["run_error"],
        )

    def create(
        self, tenant_id: str, *, kind: str, request: dict[str, Any], submitted_by: str,
        model_name: str | None = None, idempotency_key: str | None = None,
    ) -> tuple[JobRecord, bool]:
        """Insert a job; with an idempotency key already used for this tenant and kind, return
        that job (``created`` False) when the request is the same, else IdempotencyConflict."""
        digest = request_hash(request)
        if idempotency_key is not None:
            existing = self._by_key(tenant_id, kind, idempotency_key)
            if existing is not None:
                return self._same_or_conflict(existing, digest), False
        now = utcnow()
        job_id = f"{_PREFIX[kind]}-job-{uuid.uuid4().hex[:12]}"
        try:
            with self.state.begin() as conn:
                conn.execute(jobs.insert().values(
                    job_id=job_id, tenant_id=tenant_id, kind=kind, status="submitted", model_name=model_name,
                    request=json.dumps(request, default=str), result="{}", request_hash=digest,
                    idempotency_key=idempotency_key, submitted_by=submitted_by[:256],
                    created_at=now, updated_at=now,
                ))
        except sa.exc.IntegrityError:
            # A concurrent submit with the same key won the insert: answer with its job.
            existing = self._by_key(tenant_id, kind, idempotency_key) if idempotency_key else None
            if existing is None:
                raise
            return self._same_or_conflict(existing, digest), False
        return self.get(tenant_id, job_id), True

    def _same_or_conflict(self, existing: tuple[JobRecord, str], digest: str) -> JobRecord:
        record, existing_digest = existing
        if existing_digest != digest:
            raise IdempotencyConflict(
                "this Idempotency-Key was used with a different request", {"job_id": record.job_id}
            )
        return record

    def by_key(self, tenant_id: str, kind: str, key: str) -> JobRecord | None:
        """The tenant's job of this kind submitted with this Idempotency-Key, if any."""
        found = self._by_key(tenant_id, kind, key)
        return found[0] if found else None

    def _by_key(self, tenant_id: str, kind: str, key: str) -> tuple[JobRecord, str] | None:
        query = sa.select(jobs).where(jobs.c.tenant_id == tenant_id, jobs.c.kind == kind, jobs.c.idempotency_key == key)
        with self.state.begin() as conn:
            row = conn.execute(query).mappings().first()
        return (self._row_to_record(row), row["request_hash"]) if row else None

    def get(self, tenant_id: str, job_id: str, kind: str | None = None) -> JobRecord:
        query = sa.select(jobs).where(jobs.c.job_id == job_id, jobs.c.tenant_id == tenant_id)
        if kind is not None:
            query = query.where(jobs.c.kind == kind)
        with self.state.begin() as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            raise JobNotFound(job_id)
        return self._row_to_record(row)

    def list(
        self, tenant_id: str, *, kind: str | None = None, status: str | None = None, limit: int = 20,
        before: str | None = None, model_name: str | None = None,
    ) -> list[JobRecord]:
        """Newest first; ``before`` is the job id of the last item of the previous page."""
        query = sa.select(jobs).where(jobs.c.tenant_id == tenant_id)
        if kind is not None:
            query = query.where(jobs.c.kind == kind)
        if status is not None:
            query = query.where(jobs.c.status == status)
        if model_name is not None:
            query = query.where(jobs.c.model_name == model_name)
        if before is not None:
            anchor = sa.select(jobs.c.created_at).where(jobs.c.job_id == before, jobs.c.tenant_id == tenant_id).scalar_subquery()
            query = query.where(sa.or_(jobs.c.created_at < anchor, sa.and_(jobs.c.created_at == anchor, jobs.c.job_id < before)))
        query = query.order_by(jobs.c.created_at.desc(), jobs.c.job_id.desc()).limit(limit)
        with self.state.begin() as conn:
            return [self._row_to_record(row) for row in conn.execute(query).mappings()]

    def record_run_state(
        self, job_id: str, *, status: str | None = None, dagster_run_id: str | None = None,
        started_at: datetime | None = None, finished_at: datetime | None = None, run_error: str | None = None,
    ) -> bool:
        """The API's fields (see the module doc); None leaves a field as it is. Terminal states stay
        final. False when no such job exists (a run launched from the Dagster UI has no record)."""
        values = {"status": status, "dagster_run_id": dagster_run_id, "started_at": started_at,
                  "finished_at": finished_at, "run_error": run_error}
        return self._update(job_id, {k: v for k, v in values.items() if v is not None})

    def record_outcome(self, job_id: str, *, result: dict[str, Any] | None = None, error: str | None = None) -> bool:
        """The run's fields: ``result`` merged into the stored one, ``error``. False when no such job."""
        values: dict[str, Any] = {"result": result} if result is not None else {}
        if error is not None:
            values["error"] = error
        return self._update(job_id, values)

    def _update(self, job_id: str, values: dict[str, Any]) -> bool:
        with self.state.begin() as conn:
            row = conn.execute(sa.select(jobs.c.status, jobs.c.result).where(jobs.c.job_id == job_id)).mappings().first()
            if row is None:
                return False
            if "result" in values:
                merged = json.loads(row["result"] or "{}")
                merged.update(values["result"])
                values["result"] = json.dumps(merged, default=str)
            if row["status"] in TERMINAL_STATUSES and "status" in values and values["status"] != row["status"]:
                values.pop("status")
            values["updated_at"] = utcnow()
            conn.execute(jobs.update().where(jobs.c.job_id == job_id).values(**values))
        return True

    def delete(self, job_id: str) -> None:
        with self.state.begin() as conn:
            conn.execute(jobs.delete().where(jobs.c.job_id == job_id))
