"""The model registry: tenant-scoped models with semantic versions and stages, on MLflow.

Where things live in MLflow (so the MLflow UI and client show the same models):
- a registered model named ``<tenant_id>.<name>`` with tags ``mlservice.tenant``,
  ``mlservice.model_id`` (the API's UUID), ``mlservice.model_type``, ``mlservice.framework`` and
  the summary ``mlservice.current_version`` / ``mlservice.stage``; user tags as given;
- each model version carries ``mlservice.semver`` and ``mlservice.stage`` tags; the alias
  ``production`` points at the production version, so MLflow itself never holds two;
- the history of transitions and the per-model lease that serialises writers live in the
  platform's state tables (``StateStore``).

Tenancy: every read filters on the tenant tag, and another tenant's model answers exactly like a
missing one (``ModelNotFound``).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import dagster as dg
import sqlalchemy as sa

from resources.errors import (
    DependencyUnavailable,
    DomainError,
    InvalidRequest,
    ModelAlreadyExists,
    ModelNotFound,
    StageConflict,
    VersionAlreadyExists,
    VersionNotFound,
)
from resources.infra.state_db import StateStore, UTCDateTime, metadata, utcnow
from resources.models.versioning import FIRST_VERSION, SemVer, check_transition
from resources.tenants.ids import validate_tenant
from resources.tenants.quotas import TenantQuotas, models_held
from resources.vocabulary import (
    FRAMEWORKS,
    MODEL_TYPES,
    PRODUCTION_ALIAS,
    STAGES,
    T_CREATED_BY,
    T_CURRENT,
    T_FEATURE_SERVICE,
    T_FRAMEWORK,
    T_LATEST,
    T_MODEL_ID,
    T_NAME,
    T_SEMVER,
    T_STAGE,
    T_TENANT,
    T_TYPE,
    TAG,
    canonical_framework,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion, RegisteredModel

    from resources.models.artifact_check import Inspected
    from resources.models.artifact_records import ArtifactRecords

# Every stage change of a version (registration included), written and read only here.
stage_transitions = sa.Table(
    "stage_transitions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("model_id", sa.String(64), nullable=False),
    sa.Column("version", sa.String(64), nullable=False),
    sa.Column("from_stage", sa.String(32), nullable=True),
    sa.Column("to_stage", sa.String(32), nullable=False),
    sa.Column("actor", sa.String(256), nullable=False),
    sa.Column("reason", sa.String(512), nullable=True),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Index("ix_stage_transitions_model", "tenant_id", "model_id"),
)

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@dataclass
class VersionRecord:
    version: str
    stage: str
    mlflow_version: int
    source: str
    run_id: str | None
    created_at: datetime
    description: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ModelRecord:
    model_id: str
    name: str
    tenant_id: str
    description: str | None
    model_type: str
    framework: str
    tags: dict[str, str]
    current_version: str
    stage: str
    created_at: datetime
    updated_at: datetime
    mlflow_name: str
    latest_version: str | None


@dataclass
class ResolvedVersion:
    """What a version spec resolved to: enough to load it (``mlservice.inference.loader``)."""

    version: str
    mlflow_version: int
    name: str
    mlflow_name: str
    model_type: str
    framework: str
    stage: str = "development"


@dataclass
class TransitionResult:
    model_id: str
    version: str
    from_stage: str
    to_stage: str
    archived_versions: list[str]
    changed_by: str
    changed_at: datetime
    via: str | None = None  # a stage passed through on the way (one request, two moves)


def _ts(millis: int | None) -> datetime:
    return datetime.fromtimestamp((millis or 0) / 1000, tz=UTC)


class ModelRegistry(dg.ConfigurableResource):
    """Tenant-scoped model registry over any MLflow tracking/registry URI."""

    tracking_uri: str
    state: StateStore
    artifact_root: str | None = None  # for experiments created on a store without an artifact server
    quotas: TenantQuotas | None = None  # models and versions per tenant (resources/tenants/quotas.py); None: unlimited
    redis_url: str | None = None  # where every change is announced to the API processes (resources/models/change_counters.py)

    # -- plumbing --------------------------------------------------------------------------
    @property
    def client(self) -> MlflowClient:
        from mlflow import MlflowClient

        from resources.infra.mlflow_plugins import skip_feast_header_provider

        skip_feast_header_provider()
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    @contextmanager
    def _mlflow_errors(self) -> Iterator[None]:
        """Map MLflow's transport failures to a 503 and leave domain errors alone. After one, the
        next calls fail at once for a few seconds (``resources.infra.breaker``) rather than each waiting
        out the client's timeout on a server that does not answer."""
        from resources.infra.breaker import breaker_for

        breaker = breaker_for(self.tracking_uri)
        wait_s = breaker.admit()
        if wait_s is not None:
            raise DependencyUnavailable(
                "the MLflow tracking server is unreachable (it failed a call moments ago; retry shortly)",
                {"component": "mlflow"}, retry_after_s=wait_s,
            )
        try:
            yield
            breaker.succeeded()
        except DependencyUnavailable:
            raise  # a nested call's verdict, already given
        except DomainError:
            breaker.succeeded()  # the server answered
            raise
        except Exception as exc:
            if _is_connection_error(exc):
                breaker.failed()
                raise DependencyUnavailable(
                    "the MLflow tracking server is unreachable", {"component": "mlflow"},
                    retry_after_s=breaker.cooldown_s,
                ) from exc
            breaker.succeeded()
            if getattr(exc, "error_code", None) == "INVALID_PARAMETER_VALUE":
                # MLflow refused a value we passed through (a tag key, a description): the caller's input.
                raise InvalidRequest(str(getattr(exc, "message", exc))[:500]) from exc
            raise
        finally:
            breaker.settle()

    @contextmanager
    def _model_lock(self, model_id: str) -> Iterator[None]:
        owner = uuid.uuid4().hex
        key = f"model:{model_id}"
        if not self.state.try_lock(key, owner):
            raise StageConflict(
                "another change to this model's versions is in progress; retry",
                {"model_id": model_id},
            )
        try:
            yield
        finally:
            self.state.unlock(key, owner)

    # -- reads -----------------------------------------------------------------------------
    def _find(self, tenant_id: str, model_id: str) -> RegisteredModel:
        try:
            uuid.UUID(model_id)
        except (ValueError, TypeError, AttributeError):
            raise ModelNotFound(model_id) from None
        with self._mlflow_errors():
            found = self.client.search_registered_models(
                filter_string=f"tags.`{T_MODEL_ID}` = '{model_id}' and tags.`{T_TENANT}` = '{validate_tenant(tenant_id)}'",
                max_results=2,
            )
        if len(found) != 1:
            raise ModelNotFound(model_id)
        return found[0]

    def _versions(self, mlflow_name: str) -> list[ModelVersion]:
        with self._mlflow_errors():
            versions = list(self.client.search_model_versions(f"name = '{mlflow_name}'"))
        return [v for v in versions if SemVer.is_valid(v.tags.get(T_SEMVER, ""))]

    @staticmethod
    def _stage_of(version: ModelVersion, production_version: str | None) -> str:
        if str(version.version) == production_version:
            return "production"
        stage = version.tags.get(T_STAGE, "development")
        # A stage tag of production without the alias is a half-finished promotion: the alias wins.
        return "archived" if stage == "production" else stage

    def _production_version(self, rm: RegisteredModel) -> str | None:
        aliases = getattr(rm, "aliases", None) or {}
        return str(aliases[PRODUCTION_ALIAS]) if PRODUCTION_ALIAS in aliases else None

    def _to_record(self, rm: RegisteredModel) -> ModelRecord:
        tags = dict(rm.tags or {})
        user_tags = {k: v for k, v in tags.items() if not k.startswith(TAG)}
        return ModelRecord(
            model_id=tags[T_MODEL_ID],
            name=tags.get(T_NAME, rm.name.split(".", 1)[-1]),
            tenant_id=tags[T_TENANT],
            description=rm.description or None,
            model_type=tags.get(T_TYPE, "classification"),
            framework=tags.get(T_FRAMEWORK, "sklearn"),
            tags=user_tags,
            current_version=tags.get(T_CURRENT, str(FIRST_VERSION)),
            stage=tags.get(T_STAGE, "development"),
            created_at=_ts(rm.creation_timestamp),
            updated_at=_ts(rm.last_updated_timestamp),
            mlflow_name=rm.name,
            latest_version=tags.get(T_LATEST),
        )

    def get_model(self, tenant_id: str, model_id: str) -> ModelRecord:
        return self._to_record(self._find(tenant_id, model_id))

    def resolve_version(self, tenant_id: str, model_id: str, spec: str | None) -> ResolvedVersion:
        """A version spec -> the version: None means production, else the newest; a stage name
        its version; a semantic version itself. VersionNotFound otherwise (two registry reads)."""
        rm = self._find(tenant_id, model_id)
        record, production = self._to_record(rm), self._production_version(rm)
        staged = sorted(((SemVer.parse(v.tags[T_SEMVER]), v, self._stage_of(v, production)) for v in self._versions(rm.name)),
                        key=lambda item: item[0], reverse=True)
        if spec is None:
            chosen = next((s for s in staged if s[2] == "production"), staged[0] if staged else None)
        elif spec in STAGES:
            chosen = next((s for s in staged if s[2] == spec), None)
        else:
            chosen = next((s for s in staged if s[1].tags[T_SEMVER] == spec), None)
        if chosen is None:
            raise VersionNotFound(model_id, spec or "current")
        _, mv, stage = chosen
        return ResolvedVersion(mv.tags[T_SEMVER], int(mv.version), record.name, record.mlflow_name,
                               record.model_type, record.framework, stage)

    def run_id_of(self, resolved: ResolvedVersion) -> str | None:
        """The MLflow run a resolved version was logged in (None for a version without one)."""
        with self._mlflow_errors():
            return self.client.get_model_version(resolved.mlflow_name, str(resolved.mlflow_version)).run_id or None

    def production_models(self, limit: int) -> list[tuple[str, str]]:
        """(tenant, model id) of models with a production version, at most ``limit``."""
        with self._mlflow_errors():
            found = self.client.search_registered_models(filter_string=f"tags.`{T_STAGE}` = 'production'",
                                                         max_results=limit)
        return [(rm.tags[T_TENANT], rm.tags[T_MODEL_ID]) for rm in found if T_TENANT in rm.tags and T_MODEL_ID in rm.tags]

    def production_feature_services(self, tenant_id: str) -> list[dict[str, str]]:
        """The tenant's models whose production version was trained from a feature service:
        ``[{"model_id", "name", "version", "feature_service"}]`` (what a feature definition change
        may not take away)."""
        with self._mlflow_errors():
            found = self.client.search_registered_models(
                filter_string=f"tags.`{T_TENANT}` = '{validate_tenant(tenant_id)}' and tags.`{T_STAGE}` = 'production'",
                max_results=1000,
            )
        served = []
        for rm in found:
            production = self._production_version(rm)
            for mv in self._versions(rm.name):
                service = mv.tags.get(T_FEATURE_SERVICE)
                if str(mv.version) == production and service:
                    served.append({"model_id": rm.tags.get(T_MODEL_ID, ""), "name": rm.tags.get(T_NAME, rm.name),
                                   "version": mv.tags[T_SEMVER], "feature_service": service})
        return served

    def find_by_name(self, tenant_id: str, name: str) -> ModelRecord | None:
        if not NAME_RE.match(name or ""):
            return None
        with self._mlflow_errors():
            found = self.client.search_registered_models(
                filter_string=f"name = '{validate_tenant(tenant_id)}.{name}' and tags.`{T_TENANT}` = '{tenant_id}'",
                max_results=2,
            )
        return self._to_record(found[0]) if len(found) == 1 else None

    def list_models(
        self,
        tenant_id: str,
        *,
        stage: str | None = None,
        framework: str | None = None,
        model_type: str | None = None,
        name_prefix: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> tuple[list[ModelRecord], str | None]:
        """One page of the tenant's models ordered by name; the cursor is opaque."""
        clauses = [f"tags.`{T_TENANT}` = '{validate_tenant(tenant_id)}'"]
        framework = canonical_framework(framework)
        for tag, value, allowed in (
            (T_STAGE, stage, STAGES),
            (T_FRAMEWORK, framework, FRAMEWORKS),
            (T_TYPE, model_type, MODEL_TYPES),
        ):
            if value is not None:
                if value not in allowed:
                    raise InvalidRequest(f"invalid filter value '{value}'", {"allowed": list(allowed)})
                clauses.append(f"tags.`{tag}` = '{value}'")
        if name_prefix:
            if not NAME_RE.match(name_prefix):
                raise InvalidRequest("invalid name prefix", {"name_prefix": name_prefix})
            clauses.append(f"name LIKE '{tenant_id}.{name_prefix}%'")
        if cursor:
            check_cursor(cursor)
        with self._mlflow_errors():
            try:
                page = self.client.search_registered_models(
                    filter_string=" and ".join(clauses),
                    max_results=limit,
                    order_by=["name ASC"],
                    page_token=cursor,
                )
            except Exception as exc:
                if cursor and not _is_connection_error(exc):
                    raise InvalidRequest("invalid cursor", {"cursor": cursor}) from exc
                raise
        records = [self._to_record(rm) for rm in page]
        if name_prefix:  # LIKE treats '_' as a wildcard: keep exact prefix matches only
            records = [r for r in records if r.name.startswith(name_prefix)]
        return records, page.token or None

    def list_versions(self, tenant_id: str, model_id: str) -> list[VersionRecord]:
        rm = self._find(tenant_id, model_id)
        production = self._production_version(rm)
        history = self._history(tenant_id, model_id)
        records = []
        for mv in self._versions(rm.name):
            semver = mv.tags[T_SEMVER]
            records.append(
                VersionRecord(
                    version=semver,
                    stage=self._stage_of(mv, production),
                    mlflow_version=int(mv.version),
                    source=mv.source,
                    run_id=mv.run_id or None,
                    created_at=_ts(mv.creation_timestamp),
                    description=mv.description or None,
                    history=history.get(semver, []),
                )
            )
        records.sort(key=lambda r: SemVer.parse(r.version), reverse=True)
        return records

    def _history(self, tenant_id: str, model_id: str) -> dict[str, list[dict[str, Any]]]:
        query = (
            sa.select(stage_transitions)
            .where(stage_transitions.c.tenant_id == tenant_id, stage_transitions.c.model_id == model_id)
            .order_by(stage_transitions.c.id)
        )
        out: dict[str, list[dict[str, Any]]] = {}
        with self.state.begin() as conn:
            for row in conn.execute(query).mappings():
                out.setdefault(row["version"], []).append(
                    {
                        "from_stage": row["from_stage"],
                        "to_stage": row["to_stage"],
                        "changed_by": row["actor"],
                        "changed_at": row["at"],
                        "reason": row["reason"],
                    }
                )
        return out

    # -- writes ----------------------------------------------------------------------------
    def create_model(
        self,
        tenant_id: str,
        *,
        name: str,
        model_type: str,
        framework: str,
        actor: str,
        description: str | None = None,
        tags: dict[str, str] | None = None,
        source_uri: str | None = None,
    ) -> ModelRecord:
        validate_tenant(tenant_id)
        if self.quotas is not None:  # quota: the tenant's registered models (a search on the tenant tag)
            self.quotas.check(tenant_id, "models", lambda up_to: models_held(self, tenant_id, up_to))
        if not NAME_RE.match(name or ""):
            raise InvalidRequest("model name must be 1-128 characters of letters, digits, '_', '.', '-'")
        if model_type not in MODEL_TYPES:
            raise InvalidRequest(f"unknown model_type '{model_type}'", {"allowed": list(MODEL_TYPES)})
        framework = canonical_framework(framework)
        if framework not in FRAMEWORKS:
            raise InvalidRequest(f"unknown framework '{framework}'", {"allowed": list(FRAMEWORKS)})
        tags = dict(tags or {})
        reserved = sorted(k for k in tags if k.startswith(TAG))
        if reserved:
            raise InvalidRequest("tag keys starting with 'mlservice.' are reserved", {"tags": reserved})
        if source_uri is not None:
            self._resolve_source(tenant_id, source_uri)  # refuse before anything is written

        from mlflow.exceptions import MlflowException

        model_id = str(uuid.uuid4())
        mlflow_name = f"{tenant_id}.{name}"
        all_tags = {
            **tags,
            T_TENANT: tenant_id,
            T_MODEL_ID: model_id,
            T_NAME: name,
            T_TYPE: model_type,
            T_FRAMEWORK: framework,
            T_CURRENT: str(FIRST_VERSION),
            T_STAGE: "development",
            T_CREATED_BY: actor,
        }
        with self._mlflow_errors():
            try:
                self.client.create_registered_model(mlflow_name, tags=all_tags, description=description)
            except MlflowException as exc:
                if "RESOURCE_ALREADY_EXISTS" in str(exc.error_code):
                    raise ModelAlreadyExists(
                        f"a model named '{name}' already exists", {"name": name}
                    ) from None
                raise
        if source_uri is not None:
            try:
                self.register_version(tenant_id, model_id, model_uri=source_uri, actor=actor, version=str(FIRST_VERSION))
            except Exception:
                # No half-created model: the first version failed, so the model goes too.
                with self._mlflow_errors():
                    self.client.delete_registered_model(mlflow_name)
                raise
        return self.get_model(tenant_id, model_id)

    def _resolve_source(self, tenant_id: str, model_uri: str) -> tuple[str, str | None, str | None]:
        """``(location, run_id, logged_model_id)`` of a tenant's model source (``resources.models.sources``)."""
        from resources.models.sources import resolve_source

        with self._mlflow_errors():
            return resolve_source(self.client, tenant_id, model_uri, self.artifact_root)

    @property
    def artifacts(self) -> ArtifactRecords:
        """What registration recorded about each version's files (``resources.models.artifact_records``)."""
        from resources.models.artifact_records import ArtifactRecords

        return ArtifactRecords(self.state)

    def inspect(self, location: str) -> Inspected:
        """Download and check a model's files (``resources.models.artifact_check``); a 400 names what is refused."""
        from resources.models.sources import inspect_source

        with self._mlflow_errors():
            return inspect_source(location, self.tracking_uri)

    def register_version(
        self,
        tenant_id: str,
        model_id: str,
        *,
        model_uri: str,
        actor: str,
        version: str | None = None,
        bump: str = "minor",
        description: str | None = None,
    ) -> VersionRecord:
        """Register an MLflow model (run id, runs:/ or models:/ URI) as a new version.

        Without ``version`` the first version is 1.0.0 and later ones bump ``bump`` (default
        minor) of the highest existing version. New versions start in stage development.
        A source run trained on a feature service passes that tag on to the version, set at
        creation, so no reader ever sees the version without it. The artifact is inspected first
        (only shapes the platform loads with its own code; a 400 names what is refused) and its
        digest recorded with the version, so a file swapped later refuses to load.
        """
        from resources.models.artifact_records import ArtifactRecord

        rm = self._find(tenant_id, model_id)
        source, run_id, logged_model_id = self._resolve_source(tenant_id, model_uri)
        inspected = self.inspect(source)
        trained_on = None
        if run_id:
            with self._mlflow_errors():
                trained_on = self.client.get_run(run_id).data.tags.get(T_FEATURE_SERVICE)
        extra_tags = {T_FEATURE_SERVICE: trained_on} if trained_on else {}
        with self._model_lock(model_id):
            existing = {SemVer.parse(v.tags[T_SEMVER]) for v in self._versions(rm.name)}
            if version is not None:
                new = SemVer.parse(version)
                if new in existing:
                    raise VersionAlreadyExists(
                        f"version {new} already exists", {"model_id": model_id, "version": str(new)}
                    )
            else:
                new = max(existing).bump(bump) if existing else FIRST_VERSION
            if self.quotas is not None:  # quota: versions of this model, counted under the model lock
                self.quotas.check(tenant_id, "versions_per_model", lambda _: len(existing))
            with self._mlflow_errors():
                created = self.client.create_model_version(
                    rm.name,
                    source,
                    run_id=run_id,
                    description=description,
                    model_id=logged_model_id,
                    tags={**extra_tags, T_SEMVER: str(new), T_STAGE: "development", T_TENANT: tenant_id,
                          T_CREATED_BY: actor},
                )
            try:
                self.artifacts.put(ArtifactRecord(
                    mlflow_name=rm.name, mlflow_version=int(created.version), tenant_id=tenant_id, model_id=model_id,
                    kind=inspected.kind, digest=inspected.digest, files=inspected.files, features=inspected.features,
                    classes=inspected.classes,
                ))
            except Exception:
                with self._mlflow_errors():  # no version without its record: it could never load
                    self.client.delete_model_version(rm.name, created.version)
                raise
            self._record(tenant_id, model_id, str(new), None, "development", actor, "registered")
            self._refresh_summary(rm.name)
            self._announce(tenant_id, model_id)
        return next(v for v in self.list_versions(tenant_id, model_id) if v.version == str(new))

    def transition_stage(self, tenant_id: str, model_id: str, *, version: str, target_stage: str, actor: str,
                         via: str | None = None) -> TransitionResult:
        """One move of the stage machine, or two with ``via`` (a stage passed through first, skipped
        when the version is in it already): every move is checked before any is made, under the
        model's lease."""
        rm = self._find(tenant_id, model_id)
        with self._model_lock(model_id):
            rm = self._find(tenant_id, model_id)  # re-read under the lease
            production = self._production_version(rm)
            versions = self._versions(rm.name)
            target_mv = next((v for v in versions if v.tags[T_SEMVER] == version), None)
            if target_mv is None:
                raise VersionNotFound(model_id, version)
            first = current = self._stage_of(target_mv, production)
            steps = [via, target_stage] if via is not None and via != current else [target_stage]
            for before, after in zip([current, *steps], steps, strict=False):
                check_transition(before, after, version)
            archived: list[str] = []
            for step in steps:
                superseded = self._move(rm.name, versions, production, target_mv, current, step)
                for old in superseded:
                    self._record(tenant_id, model_id, old, "production", "archived", actor, f"superseded by {version}")
                when = self._record(tenant_id, model_id, version, current, step, actor, None)
                archived += superseded
                if step == "production":
                    production = str(target_mv.version)
                elif current == "production":
                    production = None
                current = step
            self._refresh_summary(rm.name)
            self._announce(tenant_id, model_id)
        return TransitionResult(model_id, version, first, target_stage, archived, actor, when,
                                via=via if len(steps) == 2 else None)

    def _move(self, name: str, versions: list, production: str | None, target_mv: Any, current: str, target: str) -> list[str]:
        """Set the version's stage in MLflow (the production alias moves atomically: never two); the versions it archived."""
        client = self.client
        archived: list[str] = []
        with self._mlflow_errors():
            if target == "production":
                previous = next((v for v in versions if str(v.version) == production), None)
                client.set_registered_model_alias(name, PRODUCTION_ALIAS, target_mv.version)
                if previous is not None and previous.version != target_mv.version:
                    client.set_model_version_tag(name, previous.version, T_STAGE, "archived")
                    archived.append(previous.tags[T_SEMVER])
            elif current == "production":
                client.delete_registered_model_alias(name, PRODUCTION_ALIAS)
            client.set_model_version_tag(name, target_mv.version, T_STAGE, target)
        return archived

    def _record(self, tenant_id: str, model_id: str, version: str, from_stage: str | None, to_stage: str, actor: str,
                reason: str | None) -> datetime:
        when = utcnow()
        with self.state.begin() as conn:
            conn.execute(
                stage_transitions.insert().values(
                    tenant_id=tenant_id, model_id=model_id, version=version, from_stage=from_stage,
                    to_stage=to_stage, actor=actor[:256], reason=reason, at=when,
                )
            )
        return when

    def _announce(self, tenant_id: str, model_id: str) -> None:
        """Tell every API process that the model changed (written already), when they share a Redis."""
        if self.redis_url:
            from resources.models.change_counters import generations_for

            generations_for(self.redis_url).bump(tenant_id, model_id)

    def _refresh_summary(self, mlflow_name: str) -> None:
        """Keep the model's current version and stage as tags, so lists need one query.

        The current version is the production version, else the highest non-archived one,
        else the highest.
        """
        client = self.client
        with self._mlflow_errors():
            rm = client.get_registered_model(mlflow_name)
            production = self._production_version(rm)
            staged = [(SemVer.parse(v.tags[T_SEMVER]), self._stage_of(v, production)) for v in self._versions(mlflow_name)]
            if not staged:
                return
            live = [s for s in staged if s[1] == "production"] or [s for s in staged if s[1] != "archived"] or staged
            semver, stage = max(live, key=lambda s: s[0])
            client.set_registered_model_tag(mlflow_name, T_CURRENT, str(semver))
            client.set_registered_model_tag(mlflow_name, T_STAGE, stage)
            client.set_registered_model_tag(mlflow_name, T_LATEST, str(max(s[0] for s in staged)))

    def ensure_experiment(self, tenant_id: str, name: str) -> str:
        """The tenant's experiment ``<tenant_id>/<name>`` (tagged with the tenant); returns its id."""
        full_name = f"{validate_tenant(tenant_id)}/{name}"
        client = self.client
        with self._mlflow_errors():
            existing = client.get_experiment_by_name(full_name)
            if existing is not None:
                return existing.experiment_id
            location = f"{self.artifact_root.rstrip('/')}/{tenant_id}" if self.artifact_root else None
            return client.create_experiment(full_name, artifact_location=location, tags={T_TENANT: tenant_id})

    def ping(self) -> None:
        """Raise DependencyUnavailable unless the tracking store answers."""
        with self._mlflow_errors():
            self.client.search_registered_models(max_results=1)


MAX_CURSOR_OFFSET = 10**9


def check_cursor(cursor: str) -> None:
    """400 for a list cursor that is not one MLflow gave out (base64 of ``{"offset": n}``), before
    MLflow sees it: its server answers a malformed token with a 500, which its client retries and
    then reports like an unreachable server (a 503 for what is bad input)."""
    import base64
    import binascii
    import json

    try:
        parsed = json.loads(base64.b64decode(cursor, validate=True))
        offset = int(parsed["offset"]) if isinstance(parsed, dict) and not isinstance(parsed.get("offset"), bool) else -1
    except (binascii.Error, ValueError, TypeError, KeyError, UnicodeDecodeError):
        offset = -1
    if not 0 < offset <= MAX_CURSOR_OFFSET:
        raise InvalidRequest("invalid cursor: send the next_cursor of a previous page as it was given", {"cursor": cursor[:200]})


def _is_connection_error(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        name = type(current).__name__
        if name in {"ConnectionError", "ConnectTimeout", "ReadTimeout", "MaxRetryError", "NewConnectionError", "ConnectionRefusedError"}:
            return True
        if "Max retries exceeded" in str(current) or "Connection refused" in str(current):
            return True
        current = current.__cause__ or current.__context__
    return False
