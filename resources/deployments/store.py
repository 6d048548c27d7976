"""Deployments' desired state: what each tenant asked Ray Serve to run, and what happened to it.

One row per deployment (``deployments``) holds the desired state — the stable version, its
replicas or autoscaling, its resources, an optional canary — with a ``generation`` that every
change increments, and what the platform last observed: ``status``, ``reason``,
``applied_generation`` (the generation a ``deploy_model`` run last applied), ``failures`` (applies
that failed in a row, for the reconciler). ``active_key`` (tenant, model, version) is unique, so
one tenant has at most one deployment of a model version; it is cleared when the deployment is
deleted or moves to another version. ``deployment_events`` keeps what happened, with reasons.

A deployment is gone (404) once its ``deploy_model`` run removed the Serve application: the row
and its events are deleted then.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from resources.errors import DomainError
from resources.infra.state_db import StateStore, UTCDateTime, metadata, utcnow

SERVING_STATUSES = ("running", "updating", "degraded")  # replicas up: the deployment answers predictions
EVENTS_SHOWN = 20  # the newest events a deployment's status lists
EVENTS_KEPT = 200  # per deployment: older ones are dropped as new ones come

deployments = sa.Table(
    "deployments",
    metadata,
    sa.Column("deployment_id", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("model_id", sa.String(64), nullable=False),
    sa.Column("model_name", sa.String(256), nullable=False),
    sa.Column("version", sa.String(64), nullable=False),
    sa.Column("runtime", sa.String(32), nullable=False),
    sa.Column("spec", sa.Text, nullable=False),  # num_replicas, autoscaling, resources
    sa.Column("canary", sa.Text, nullable=True),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("generation", sa.Integer, nullable=False),
    sa.Column("applied_generation", sa.Integer, nullable=True),
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("active_key", sa.String(256), nullable=True, unique=True),
    sa.Column("created_by", sa.String(256), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)
sa.Index("ix_deployments_tenant_created", deployments.c.tenant_id, deployments.c.created_at)

deployment_events = sa.Table(
    "deployment_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("deployment_id", sa.String(64), nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("details", sa.Text, nullable=True),
)
sa.Index("ix_deployment_events_deployment_id", deployment_events.c.deployment_id, deployment_events.c.id)


class DeploymentNotFound(DomainError):
    code = "DEPLOYMENT_NOT_FOUND"

    def __init__(self, deployment_id: str):
        super().__init__(f"deployment '{deployment_id}' not found", {"deployment_id": deployment_id})


class DeploymentExists(DomainError):
    code = "DEPLOYMENT_EXISTS"


def active_key(tenant_id: str, model_id: str, version: str) -> str:
    return f"{tenant_id}|{model_id}|{version}"


ROLES = ("stable", "canary")


def app_name(tenant_id: str, deployment_id: str, role: str = "stable") -> str:
    """The Serve application of a deployment's role: the tenant's and the deployment's names (both
    checked ids), ``--canary`` for the canary's. Two applications rather than one with both
    versions: Serve rolls every replica of an application on each change, so a canary that starts
    or ends never touches the stable version's replicas."""
    return f"{tenant_id}--{deployment_id}" + ("--canary" if role == "canary" else "")


def route_prefix(tenant_id: str, deployment_id: str, role: str = "stable") -> str:
    """Serve matches route prefixes by whole path segments: the canary's is not under the stable's."""
    return f"/{tenant_id}/{deployment_id}" + ("--canary" if role == "canary" else "")


@dataclass
class DeploymentEvent:
    at: datetime
    kind: str
    message: str
    details: dict[str, Any] | None = None


@dataclass
class DeploymentRecord:
    deployment_id: str
    tenant_id: str
    model_id: str
    model_name: str
    version: str
    runtime: str
    spec: dict[str, Any]  # num_replicas | autoscaling, resources
    canary: dict[str, Any] | None
    status: str
    reason: str | None
    generation: int
    applied_generation: int | None
    failures: int
    created_by: str
    created_at: datetime
    updated_at: datetime
    events: list[DeploymentEvent] = field(default_factory=list)

    @property
    def app_name(self) -> str:
        return app_name(self.tenant_id, self.deployment_id)

    @property
    def route_prefix(self) -> str:
        return route_prefix(self.tenant_id, self.deployment_id)

    def app_of(self, role: str) -> str:
        return app_name(self.tenant_id, self.deployment_id, role)

    def route_of(self, role: str) -> str:
        return route_prefix(self.tenant_id, self.deployment_id, role)

    def version_of(self, role: str) -> str:
        return self.canary["version"] if role == "canary" and self.canary else self.version

    @property
    def canary_serving(self) -> bool:
        """A canary whose application ran (``running_at``, set by the run that applied it): it takes its share."""
        return bool(self.canary and self.canary.get("running_at"))


class DeploymentStore:
    def __init__(self, state: StateStore) -> None:
        self.state = state

    @staticmethod
    def _record(row: Any, events: list[DeploymentEvent] | None = None) -> DeploymentRecord:
        return DeploymentRecord(
            deployment_id=row["deployment_id"], tenant_id=row["tenant_id"], model_id=row["model_id"],
            model_name=row["model_name"], version=row["version"], runtime=row["runtime"], spec=json.loads(row["spec"]),
            canary=json.loads(row["canary"]) if row["canary"] else None, status=row["status"], reason=row["reason"],
            generation=row["generation"], applied_generation=row["applied_generation"], failures=row["failures"],
            created_by=row["created_by"], created_at=row["created_at"], updated_at=row["updated_at"], events=events or [],
        )

    def create(self, tenant_id: str, *, model_id: str, model_name: str, version: str, runtime: str, spec: dict[str, Any],
               created_by: str) -> DeploymentRecord:
        """A new deployment in ``deploying`` at generation 1; 409 DEPLOYMENT_EXISTS when the tenant
        has one of this model version already."""
        deployment_id = f"dep-{uuid.uuid4().hex[:16]}"
        now = utcnow()
        try:
            with self.state.begin() as conn:
                conn.execute(deployments.insert().values(
                    deployment_id=deployment_id, tenant_id=tenant_id, model_id=model_id, model_name=model_name[:256],
                    version=version, runtime=runtime, spec=json.dumps(spec), canary=None, status="deploying", reason=None,
                    generation=1, applied_generation=None, failures=0, active_key=active_key(tenant_id, model_id, version),
                    created_by=created_by[:256], created_at=now, updated_at=now,
                ))
                self._event(conn, deployment_id, "created", f"deploy version {version}", {"spec": spec})
        except sa.exc.IntegrityError:
            raise self._exists(tenant_id, model_id, version) from None
        return self.get(tenant_id, deployment_id)

    def _exists(self, tenant_id: str, model_id: str, version: str) -> DeploymentExists:
        query = sa.select(deployments.c.deployment_id).where(deployments.c.active_key == active_key(tenant_id, model_id, version))
        with self.state.begin() as conn:
            other = conn.execute(query).scalar_one_or_none()
        return DeploymentExists(f"model version {version} already has a deployment: change it with PATCH, or delete it first",
                                {"model_id": model_id, "version": version, "deployment_id": other})

    def get(self, tenant_id: str, deployment_id: str) -> DeploymentRecord:
        """The tenant's deployment with its newest events; another tenant's is not found."""
        query = sa.select(deployments).where(deployments.c.deployment_id == deployment_id, deployments.c.tenant_id == tenant_id)
        with self.state.begin() as conn:
            row = conn.execute(query).mappings().first()
            if row is None:
                raise DeploymentNotFound(deployment_id)
            return self._record(row, self._events(conn, deployment_id))

    def find(self, deployment_id: str) -> DeploymentRecord | None:
        """Any tenant's deployment, for the platform's own runs and sensors (never for a request)."""
        with self.state.begin() as conn:
            row = conn.execute(sa.select(deployments).where(deployments.c.deployment_id == deployment_id)).mappings().first()
            return None if row is None else self._record(row, self._events(conn, deployment_id))

    def list(self, tenant_id: str | None = None, *, model_id: str | None = None, limit: int = 100) -> list[DeploymentRecord]:
        """A tenant's deployments, newest first (``tenant_id`` None: every tenant's, for the reconciler)."""
        query = sa.select(deployments).order_by(deployments.c.created_at.desc()).limit(limit)
        if tenant_id is not None:
            query = query.where(deployments.c.tenant_id == tenant_id)
        if model_id is not None:
            query = query.where(deployments.c.model_id == model_id)
        with self.state.begin() as conn:
            return [self._record(row) for row in conn.execute(query).mappings()]

    def change(self, tenant_id: str, deployment_id: str, *, status: str, event: str, message: str,
               details: dict[str, Any] | None = None, **desired: Any) -> DeploymentRecord:
        """A new generation of the desired state (``version``, ``spec``, ``canary``; only those given
        change), with its status and event. 409 when the new version has a deployment already."""
        record = self.get(tenant_id, deployment_id)
        values: dict[str, Any] = {"status": status, "reason": None, "generation": record.generation + 1, "failures": 0,
                                  "updated_at": utcnow()}
        if "version" in desired:
            values["version"] = desired["version"]
            values["active_key"] = active_key(tenant_id, record.model_id, desired["version"])
        if "spec" in desired:
            values["spec"] = json.dumps(desired["spec"])
        if "canary" in desired:
            values["canary"] = json.dumps(desired["canary"]) if desired["canary"] is not None else None
        try:
            with self.state.begin() as conn:
                updated = conn.execute(deployments.update().where(
                    deployments.c.deployment_id == deployment_id, deployments.c.generation == record.generation,
                ).values(**values)).rowcount
                if updated:
                    self._event(conn, deployment_id, event, message, details)
        except sa.exc.IntegrityError:
            raise self._exists(tenant_id, record.model_id, desired["version"]) from None
        if not updated:  # another change came first: apply this one on top of it
            return self.change(tenant_id, deployment_id, status=status, event=event, message=message, details=details, **desired)
        return self.get(tenant_id, deployment_id)

    def mark_deleting(self, tenant_id: str, deployment_id: str) -> DeploymentRecord:
        """``deleting``; the version is free for a new deployment at once."""
        self.get(tenant_id, deployment_id)
        with self.state.begin() as conn:
            conn.execute(deployments.update().where(deployments.c.deployment_id == deployment_id).values(
                status="deleting", reason=None, active_key=None, generation=deployments.c.generation + 1, updated_at=utcnow()))
            self._event(conn, deployment_id, "deleting", "deletion requested")
        return self.get(tenant_id, deployment_id)

    def observe(self, deployment_id: str, *, status: str, reason: str | None = None, event: str | None = None,
                message: str | None = None, details: dict[str, Any] | None = None, applied_generation: int | None = None,
                failed: bool | None = None, **desired: Any) -> None:
        """What a run or the reconciler saw: the status (and why), an event, the generation applied,
        a failed apply counted (``failed`` True) or the count reset (False). ``desired`` (``canary``,
        ``version``) is for the reconciler's own decisions (a rollback clears the canary)."""
        values: dict[str, Any] = {"status": status, "reason": reason, "updated_at": utcnow()}
        if applied_generation is not None:
            values["applied_generation"] = applied_generation
        if failed is True:
            values["failures"] = deployments.c.failures + 1
        elif failed is False:
            values["failures"] = 0
        if "canary" in desired:
            values["canary"] = json.dumps(desired["canary"]) if desired["canary"] is not None else None
        with self.state.begin() as conn:
            conn.execute(deployments.update().where(deployments.c.deployment_id == deployment_id).values(**values))
            if event is not None:
                self._event(conn, deployment_id, event, message or status, details)

    def remove(self, deployment_id: str) -> None:
        """Gone: the Serve application was deleted (its events and traffic with it)."""
        from resources.deployments.traffic import deployment_traffic

        with self.state.begin() as conn:
            conn.execute(deployment_traffic.delete().where(deployment_traffic.c.deployment_id == deployment_id))
            conn.execute(deployment_events.delete().where(deployment_events.c.deployment_id == deployment_id))
            conn.execute(deployments.delete().where(deployments.c.deployment_id == deployment_id))

    def count(self, tenant_id: str) -> int:
        query = sa.select(sa.func.count()).select_from(deployments).where(deployments.c.tenant_id == tenant_id)
        with self.state.begin() as conn:
            return conn.execute(query).scalar_one()

    # -- events --------------------------------------------------------------------------------------
    @staticmethod
    def _event(conn: Any, deployment_id: str, kind: str, message: str, details: dict[str, Any] | None = None) -> None:
        conn.execute(deployment_events.insert().values(
            deployment_id=deployment_id, at=utcnow(), kind=kind[:64], message=message[:2000],
            details=json.dumps(details, default=str)[:20_000] if details else None))
        keep_from = (sa.select(deployment_events.c.id).where(deployment_events.c.deployment_id == deployment_id)
                     .order_by(deployment_events.c.id.desc()).offset(EVENTS_KEPT).limit(1)).scalar_subquery()
        conn.execute(deployment_events.delete().where(deployment_events.c.deployment_id == deployment_id,
                                                      deployment_events.c.id <= keep_from))

    @staticmethod
    def _events(conn: Any, deployment_id: str, limit: int = EVENTS_SHOWN) -> list[DeploymentEvent]:
        query = (sa.select(deployment_events).where(deployment_events.c.deployment_id == deployment_id)
                 .order_by(deployment_events.c.id.desc()).limit(limit))
        return [DeploymentEvent(at=r["at"], kind=r["kind"], message=r["message"],
                                details=json.loads(r["details"]) if r["details"] else None)
                for r in conn.execute(query).mappings()]
