"""A tenant's feature definitions through the API: a document checked as a whole (400 listing
every problem), diffed against the tenant's current revision (the plan), refused when it takes a
view or service from a production model (409), applied with Feast, kept as a new revision.

The sources' schemas are read from their parquet footers only, under the data-access policy
(a path outside the tenant's area or an s3:// bucket it may not read is a problem of the
document, like a missing file).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from resources.data.access import DataAccessPolicy
from resources.errors import (
    FeatureDefinitionInUse,
    FeatureDefinitionsConflict,
    FeatureDefinitionsNotFound,
    FeatureStoreNotFound,
    InvalidRequest,
)
from resources.features.definitions import FeatureDocument, SourceDef, feast_objects, plan, problems
from resources.features.revisions import FeatureDefinitionStore, Revision, RevisionConflict
from resources.features.store import FeatureStoreResource
from resources.models.registry import ModelRegistry

LEASE_S = 600.0  # longer than any apply (Feast writes the registry and creates or drops online tables)


@dataclass
class FeatureDefinitionService:
    store: FeatureStoreResource
    revisions: FeatureDefinitionStore
    policy: DataAccessPolicy
    registry: ModelRegistry

    def put(self, tenant_id: str, document: FeatureDocument, *, applied_by: str, dry_run: bool) -> dict[str, Any]:
        """Check, plan and (unless ``dry_run``) apply and store, holding the tenant's definitions
        lease (a row of the state database: API processes take turns), so the registry and the
        newest revision never disagree; a change while another is applied is 409."""
        key, owner = f"feature-definitions:{tenant_id}", uuid.uuid4().hex
        if not self.revisions.state.try_lock(key, owner, lease_s=LEASE_S):
            raise FeatureDefinitionsConflict("another change to this tenant's feature definitions is being applied; "
                                             "retry when it is done", {"tenant_id": tenant_id})
        try:
            return self._put(tenant_id, document, applied_by=applied_by, dry_run=dry_run)
        finally:
            self.revisions.state.unlock(key, owner)

    def _put(self, tenant_id: str, document: FeatureDocument, *, applied_by: str, dry_run: bool) -> dict[str, Any]:
        found = problems(document, lambda source: self._columns(tenant_id, source))
        if found:
            raise InvalidRequest(f"the feature definitions have {len(found)} problem(s)", {"problems": found})
        current = self.revisions.get(tenant_id)
        planned = plan(current.document if current else None, document)
        self._check_in_use(tenant_id, current, document, planned)
        result: dict[str, Any] = {"dry_run": dry_run, "plan": planned,
                                  "revision": current.revision if current else None}
        if dry_run:
            return result
        objects = feast_objects(document, lambda source: self.policy.resolve(tenant_id, source.path).uri,
                                s3_endpoint_url=self.policy.s3_endpoint_url)
        applied = self.store.apply_objects(tenant_id, objects, delete=planned["removed"])
        if current is not None and not (planned["added"] or planned["changed"] or planned["removed"]):
            return {**result, "project": applied["project"]}  # the same document again: no new revision
        try:
            stored = self.revisions.add(tenant_id, document, planned, applied_by, after=current.revision if current else None)
        except RevisionConflict:
            raise FeatureDefinitionsConflict("another change to this tenant's feature definitions was applied meanwhile; "
                                             "read them again and retry", {"tenant_id": tenant_id}) from None
        return {**result, "revision": stored.revision, "project": applied["project"]}

    def get(self, tenant_id: str, revision: int | None) -> tuple[Revision, list[int]]:
        found = self.revisions.get(tenant_id, revision)
        if found is None:
            if revision is None:
                raise FeatureStoreNotFound(tenant_id, "this tenant has no feature definitions: PUT /api/v1/features/definitions")
            raise FeatureDefinitionsNotFound(f"revision {revision} of this tenant's feature definitions not found", {"revision": revision})
        return found, self.revisions.revisions(tenant_id)

    def _columns(self, tenant_id: str, source: SourceDef) -> dict[str, str] | str:
        from resources.data import storage

        try:
            location = self.policy.resolve(tenant_id, source.path)
            footers = storage.parquet_footers(location, self.policy)
        except InvalidRequest as exc:
            return exc.message
        except FileNotFoundError:
            return f"{source.path} does not exist"
        except (OSError, ValueError) as exc:  # not parquet, unreadable, S3 refused
            return f"{source.path} cannot be read as parquet ({type(exc).__name__})"
        if footers.schema is None:
            return f"{source.path} holds no parquet file"
        return {f.name: str(f.type) for f in footers.schema}

    def _check_in_use(self, tenant_id: str, current: Revision | None, document: FeatureDocument,
                      planned: dict[str, list[str]]) -> None:
        """409 when a production model's feature service, or a view it reads, would be removed or
        lose a feature the service selects."""
        if current is None or not (planned["removed"] or planned["changed"]):
            return
        services_after = {s.name for s in document.feature_services}
        fields_after = {v.name: {f.name for f in v.fields} for v in document.feature_views}
        conflicts = []
        for model in self.registry.production_feature_services(tenant_id):
            service = model["feature_service"]
            before = {(v, f) for s in current.document.feature_services if s.name == service
                      for v, f in current.document.service_refs(s)}
            lost = sorted(f"{v}:{f}" for v, f in before if f not in fields_after.get(v, set()))
            if service not in services_after or lost:
                conflicts.append({**model, "views": sorted({v for v, _ in before}),
                                  "lost": lost if service in services_after else [f"feature_service:{service}"]})
        if conflicts:
            names = ", ".join(f"{c['name']} {c['version']} (feature service {c['feature_service']})" for c in conflicts)
            raise FeatureDefinitionInUse(f"production model(s) read what this change removes: {names}", {"models": conflicts})
