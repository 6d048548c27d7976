"""Ensembles: named, tenant-scoped sets of weighted model members, stored in the state tables."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from resources.errors import DomainError
from resources.infra.state_db import StateStore, UTCDateTime, metadata, utcnow

ensembles = sa.Table(
    "ensembles",
    metadata,
    sa.Column("ensemble_id", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("method", sa.String(32), nullable=False),
    sa.Column("members", sa.Text, nullable=False),
    sa.Column("parallel_inference", sa.Boolean, nullable=False),
    sa.Column("fail_on_partial", sa.Boolean, nullable=False),
    sa.Column("min_models_required", sa.Integer, nullable=False),
    sa.Column("timeout_ms", sa.Integer, nullable=False),
    sa.Column("model_type", sa.String(32), nullable=False),
    sa.Column("classes", sa.Text, nullable=True),
    sa.Column("created_by", sa.String(256), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("tenant_id", "name", name="uq_ensembles_tenant_name"),
)


class EnsembleNotFound(DomainError):
    code = "ENSEMBLE_NOT_FOUND"

    def __init__(self, ensemble_id: str):
        super().__init__(f"ensemble '{ensemble_id}' not found", {"ensemble_id": ensemble_id})


class EnsembleAlreadyExists(DomainError):
    code = "ENSEMBLE_ALREADY_EXISTS"


@dataclass
class EnsembleRecord:
    ensemble_id: str
    tenant_id: str
    name: str
    method: str
    members: list[dict[str, Any]]  # model_id, version (spec or None), weight (normalised)
    parallel_inference: bool
    fail_on_partial: bool
    min_models_required: int
    timeout_ms: int
    model_type: str
    classes: list | None
    created_at: datetime


class EnsembleStore:
    def __init__(self, state: StateStore) -> None:
        self.state = state

    @staticmethod
    def _record(row: Any) -> EnsembleRecord:
        return EnsembleRecord(
            ensemble_id=row["ensemble_id"], tenant_id=row["tenant_id"], name=row["name"], method=row["method"],
            members=json.loads(row["members"]), parallel_inference=row["parallel_inference"],
            fail_on_partial=row["fail_on_partial"], min_models_required=row["min_models_required"],
            timeout_ms=row["timeout_ms"], model_type=row["model_type"],
            classes=json.loads(row["classes"]) if row["classes"] else None,
            created_at=row["created_at"],
        )

    def create(self, tenant_id: str, *, created_by: str, **fields: Any) -> EnsembleRecord:
        ensemble_id = str(uuid.uuid4())
        values = {**fields, "members": json.dumps(fields["members"]),
                  "classes": json.dumps(fields["classes"]) if fields.get("classes") is not None else None}
        try:
            with self.state.begin() as conn:
                conn.execute(ensembles.insert().values(
                    ensemble_id=ensemble_id, tenant_id=tenant_id, created_by=created_by[:256], created_at=utcnow(), **values
                ))
        except sa.exc.IntegrityError:
            raise EnsembleAlreadyExists(f"an ensemble named '{fields['name']}' already exists", {"name": fields["name"]}) from None
        return self.get(tenant_id, ensemble_id)

    def get(self, tenant_id: str, ensemble_id: str) -> EnsembleRecord:
        query = sa.select(ensembles).where(ensembles.c.ensemble_id == ensemble_id, ensembles.c.tenant_id == tenant_id)
        with self.state.begin() as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            raise EnsembleNotFound(ensemble_id)
        return self._record(row)

    def list(self, tenant_id: str) -> list[EnsembleRecord]:
        query = sa.select(ensembles).where(ensembles.c.tenant_id == tenant_id).order_by(ensembles.c.name)
        with self.state.begin() as conn:
            return [self._record(row) for row in conn.execute(query).mappings()]

    def count(self, tenant_id: str) -> int:
        query = sa.select(sa.func.count()).select_from(ensembles).where(ensembles.c.tenant_id == tenant_id)
        with self.state.begin() as conn:
            return conn.execute(query).scalar_one()

    def delete(self, tenant_id: str, ensemble_id: str) -> None:
        with self.state.begin() as conn:
            deleted = conn.execute(
                ensembles.delete().where(ensembles.c.ensemble_id == ensemble_id, ensembles.c.tenant_id == tenant_id)
            ).rowcount
        if not deleted:
            raise EnsembleNotFound(ensemble_id)
