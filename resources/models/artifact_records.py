"""What the platform recorded about a version's artifact when it registered it.

Registration (``ModelRegistry.register_version``) inspects the artifact (``resources.models.artifact_check``)
and stores one row here: the kind the platform recognised, a digest of every file, the signature's
inputs and the classes. Loading verifies the files against the digest before anything is read,
and a version without a row is never loaded (it did not come through the platform). Rows live in
the platform's own database, not in MLflow, whose tags any MLflow writer can change.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from resources.infra.state_db import StateStore, UTCDateTime, metadata, utcnow

model_artifacts = sa.Table(
    "model_artifacts",
    metadata,
    sa.Column("mlflow_name", sa.String(300), primary_key=True),
    sa.Column("mlflow_version", sa.Integer, primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("model_id", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("files", sa.Text, nullable=False),  # JSON {relative path: sha256}
    sa.Column("features", sa.Text, nullable=False),  # JSON [{"name", "type"}] of the signature's inputs
    sa.Column("classes", sa.Text, nullable=True),  # JSON list, classifiers only
    sa.Column("registered_at", UTCDateTime(), nullable=False),
)


@dataclass
class ArtifactRecord:
    mlflow_name: str
    mlflow_version: int
    tenant_id: str
    model_id: str
    kind: str  # one of resources.models.artifact_check.KINDS
    digest: str
    files: dict[str, str]
    features: list[dict[str, str]]
    classes: list[Any] | None = None
    registered_at: datetime = field(default_factory=utcnow)


class ArtifactRecords:
    def __init__(self, state: StateStore) -> None:
        self.state = state

    def put(self, record: ArtifactRecord) -> None:
        with self.state.begin() as conn:
            conn.execute(model_artifacts.delete().where(
                model_artifacts.c.mlflow_name == record.mlflow_name,
                model_artifacts.c.mlflow_version == record.mlflow_version,
            ))
            conn.execute(model_artifacts.insert().values(
                mlflow_name=record.mlflow_name, mlflow_version=record.mlflow_version, tenant_id=record.tenant_id,
                model_id=record.model_id, kind=record.kind, digest=record.digest,
                files=json.dumps(record.files, sort_keys=True), features=json.dumps(record.features),
                classes=None if record.classes is None else json.dumps(record.classes), registered_at=record.registered_at,
            ))

    def get(self, mlflow_name: str, mlflow_version: int) -> ArtifactRecord | None:
        query = sa.select(model_artifacts).where(
            model_artifacts.c.mlflow_name == mlflow_name, model_artifacts.c.mlflow_version == int(mlflow_version)
        )
        with self.state.begin() as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            return None
        return ArtifactRecord(
            mlflow_name=row["mlflow_name"], mlflow_version=row["mlflow_version"], tenant_id=row["tenant_id"],
            model_id=row["model_id"], kind=row["kind"], digest=row["digest"], files=json.loads(row["files"]),
            features=json.loads(row["features"]), classes=None if row["classes"] is None else json.loads(row["classes"]),
            registered_at=row["registered_at"],
        )
