"""Drift references set through the API: a version's reference sample kept in the platform's DB.

A version trained by the platform carries its reference in its MLflow run; one registered from
elsewhere (or one whose reference should change) gets it from ``POST /monitoring/{id}/reference``
(a parquet file under the data-access policy, or a window of the version's own traffic). The
sample is stored here as parquet bytes (at most 10,000 rows: well under a megabyte for a few dozen
columns), in the database every API worker and the Dagster runs share. The newest one of a version
wins over its training sample.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from resources.infra.state_db import StateStore, UTCDateTime, metadata, utcnow

monitoring_references = sa.Table(
    "monitoring_references",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("model_id", sa.String(64), nullable=False),
    sa.Column("version", sa.String(64), nullable=False),
    sa.Column("source", sa.String(32), nullable=False),  # path | traffic
    sa.Column("detail", sa.String(2048), nullable=True),  # the path, or the window
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),  # parquet
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("created_by", sa.String(256), nullable=False),
    sa.Index("ix_monitoring_references_version", "tenant_id", "model_id", "version", "id"),
)


@dataclass(frozen=True)
class StoredReference:
    id: int
    version: str
    source: str
    detail: str | None
    rows: int
    data: bytes
    sha256: str
    created_at: datetime


class ReferenceStore:
    def __init__(self, state: StateStore) -> None:
        self.state = state

    def put(self, tenant_id: str, model_id: str, version: str, *, source: str, detail: str | None, rows: int, data: bytes,
            actor: str) -> int:
        with self.state.begin() as conn:
            return conn.execute(monitoring_references.insert().values(
                tenant_id=tenant_id, model_id=model_id, version=version, source=source, detail=(detail or "")[:2048],
                rows=rows, data=data, sha256=hashlib.sha256(data).hexdigest(), created_at=utcnow(),
                created_by=actor[:256]).returning(monitoring_references.c.id)).scalar_one()

    def latest_id(self, tenant_id: str, model_id: str, version: str) -> int | None:
        """The id of the version's newest reference (a cheap check that a cached one is current)."""
        t = monitoring_references
        with self.state.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.max(t.c.id)).where(
                t.c.tenant_id == tenant_id, t.c.model_id == model_id, t.c.version == version)).scalar()

    def latest(self, tenant_id: str, model_id: str, version: str) -> StoredReference | None:
        t = monitoring_references
        query = (sa.select(t.c.id, t.c.version, t.c.source, t.c.detail, t.c.rows, t.c.data, t.c.sha256, t.c.created_at)
                 .where(t.c.tenant_id == tenant_id, t.c.model_id == model_id, t.c.version == version)
                 .order_by(t.c.id.desc()).limit(1))
        with self.state.engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else StoredReference(**row._mapping)
