"""Each tenant's feature definition documents (``resources.features.definitions``): every applied
revision is kept, numbered from 1; the newest is what the tenant's Feast registry holds."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from resources.features.definitions import FeatureDocument
from resources.infra.state_db import StateStore, UTCDateTime, metadata, utcnow

feature_definitions = sa.Table(
    "feature_definitions",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("revision", sa.Integer, primary_key=True),
    sa.Column("document", sa.Text, nullable=False),  # the document as applied (JSON)
    sa.Column("plan", sa.Text, nullable=False),  # what applying it changed (JSON: added, changed, removed)
    sa.Column("applied_by", sa.String(256), nullable=False),
    sa.Column("applied_at", UTCDateTime(), nullable=False),
)


@dataclass(frozen=True)
class Revision:
    tenant_id: str
    revision: int
    document: FeatureDocument
    plan: dict[str, list[str]]
    applied_by: str
    applied_at: datetime

    def public(self) -> dict[str, Any]:
        return {"revision": self.revision, "document": self.document.model_dump(mode="json"), "plan": self.plan,
                "applied_by": self.applied_by, "applied_at": self.applied_at}


class RevisionConflict(Exception):
    """Another apply of the same tenant stored its revision first."""


class FeatureDefinitionStore:
    def __init__(self, state: StateStore) -> None:
        self.state = state

    def get(self, tenant_id: str, revision: int | None = None) -> Revision | None:
        """The tenant's revision ``revision`` (default: the newest); None when there is none."""
        query = sa.select(feature_definitions).where(feature_definitions.c.tenant_id == tenant_id)
        query = query.where(feature_definitions.c.revision == revision) if revision is not None else \
            query.order_by(feature_definitions.c.revision.desc()).limit(1)
        with self.state.begin() as conn:
            row = conn.execute(query).mappings().first()
        return _revision(row) if row is not None else None

    def revisions(self, tenant_id: str) -> list[int]:
        with self.state.begin() as conn:
            return list(conn.execute(sa.select(feature_definitions.c.revision)
                                     .where(feature_definitions.c.tenant_id == tenant_id)
                                     .order_by(feature_definitions.c.revision)).scalars())

    def add(self, tenant_id: str, document: FeatureDocument, plan: dict[str, list[str]], applied_by: str,
            after: int | None) -> Revision:
        """Store the next revision; ``after`` is the revision the plan was made against (None: the
        first). RevisionConflict when another revision was stored meanwhile."""
        number = (after or 0) + 1
        values = {"tenant_id": tenant_id, "revision": number, "document": document.model_dump_json(),
                  "plan": json.dumps(plan), "applied_by": applied_by[:256], "applied_at": utcnow()}
        try:
            with self.state.begin() as conn:
                conn.execute(feature_definitions.insert().values(**values))
        except sa.exc.IntegrityError as exc:
            raise RevisionConflict(tenant_id) from exc
        return _revision(values)


def _revision(row: Any) -> Revision:
    return Revision(tenant_id=row["tenant_id"], revision=row["revision"],
                    document=FeatureDocument.model_validate_json(row["document"]), plan=json.loads(row["plan"]),
                    applied_by=row["applied_by"], applied_at=row["applied_at"])
