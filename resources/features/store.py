"""The feature store: one Feast project per tenant, applied, materialized and read in process.

``FeatureStoreResource`` is a Dagster resource (materialization assets, training sets) and a
plain object for the API (online lookups). Each tenant has its own Feast repository and
registry under ``<data_dir>/feast/<tenant>/`` and its sources under its data area
(``resources.features.feast_config`` has the layout and the online store choices); no call
takes another tenant's project, so one tenant can neither read nor materialize another's views.

All methods are synchronous and thread-safe; one ``feast.FeatureStore`` is cached per tenant.
Writes (apply, materialize) hold a per-tenant lock that also spans processes (a lock file in
the tenant's repository), so an API process and Dagster run workers do not interleave registry
writes. With SQLite, lookups of one tenant take turns on Feast's shared connection (a lookup is
~0.2 ms) and wait while this same process materializes that tenant; materialization normally
runs in Dagster run workers, and the online store file is in WAL mode so their writes do not
block the API's reads. Feast is imported inside methods only.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import PrivateAttr

from resources.errors import (
    DependencyUnavailable,
    FeatureNotFound,
    FeatureServiceNotFound,
    FeatureStoreNotFound,
    FeatureViewNotFound,
    InvalidRequest,
)
from resources.features.definitions import type_name
from resources.features.demo_names import SOURCE_FILES as VIEW_SOURCE_FILES
from resources.features.feast_config import OnlineStoreKind, feature_store_yaml, repo_config_options
from resources.features.refs import FeatureRef, check_entity_rows, parse_refs, shape_rows
from resources.infra.state_db import as_utc
from resources.tenants.ids import is_valid_tenant, validate_tenant

if TYPE_CHECKING:
    import pandas as pd
    from feast import FeatureStore

SOURCE_FILES = tuple(VIEW_SOURCE_FILES.values())
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CATALOG_RETRY_S = 2.0  # an unknown name re-reads the registry at most this often
# What a store loads on first use (provider, registry, stores), for ``import_feast``.
_FEAST_MODULES = (
    "feast", "feast.repo_operations", "feast.infra.passthrough_provider", "feast.infra.registry.file",
    "feast.infra.online_stores.sqlite", "feast.infra.offline_stores.dask", "feast.infra.compute_engines.local.compute",
    "feast.infra.online_stores.postgres_online_store", "feast.infra.online_stores.mysql_online_store",
    "feast.infra.online_stores.milvus_online_store",
)


@dataclass(frozen=True)
class ViewInfo:
    name: str
    features: tuple[str, ...]
    join_keys: dict[str, type]
    ttl_seconds: float | None
    source_path: str | None
    schema: tuple[tuple[str, str], ...] = ()  # (column, the platform's type name): join keys, then features
    timestamp_field: str = "event_timestamp"  # the source's
    online: bool = True
    last_materialized: tuple[datetime, datetime] | None = None

    def public(self) -> dict[str, Any]:
        window = self.last_materialized
        return {"name": self.name, "features": list(self.features), "join_keys": list(self.join_keys),
                "ttl_seconds": self.ttl_seconds, "schema": [{"name": n, "type": t} for n, t in self.schema],
                "online": self.online,
                "last_materialized": {"start": window[0], "end": window[1]} if window else None}


@dataclass
class _Tenant:
    store: FeatureStore
    lock: threading.RLock = field(default_factory=threading.RLock)
    views: dict[str, ViewInfo] = field(default_factory=dict)
    services: dict[str, list[FeatureRef]] = field(default_factory=dict)
    loaded_at: float = 0.0


def utc(value: datetime | None, default: datetime | None) -> datetime | None:
    if value is None:
        return default
    return as_utc(value)


def _python_type(dtype: Any) -> type:
    return int if "Int" in str(dtype) else str


class FeatureStoreResource(dg.ConfigurableResource):
    """Per-tenant Feast feature stores under ``data_dir``."""

    data_dir: str
    online_store: OnlineStoreKind = "sqlite"
    online_store_url: str | None = None
    registry_cache_ttl_s: int = 60

    _tenants: dict[str, _Tenant] = PrivateAttr(default_factory=dict)
    _guard: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    # -- where things are ----------------------------------------------------------------------
    def repo_dir(self, tenant_id: str) -> Path:
        return Path(self.data_dir).resolve() / "feast" / validate_tenant(tenant_id)

    def source_dir(self, tenant_id: str) -> Path:
        return Path(self.data_dir).resolve() / "tenants" / validate_tenant(tenant_id) / "features"

    def has_feature_data(self, tenant_id: str) -> bool:
        return all((self.source_dir(tenant_id) / name).is_file() for name in SOURCE_FILES)

    def is_applied(self, tenant_id: str) -> bool:
        return (self.repo_dir(tenant_id) / "registry.db").is_file()

    def tenants(self) -> list[str]:
        """Tenants with an applied feature store (what the hourly schedule materializes)."""
        root = Path(self.data_dir).resolve() / "feast"
        if not root.is_dir():
            return []
        return sorted(p.name for p in root.iterdir() if is_valid_tenant(p.name) and (p / "registry.db").is_file())

    def repo_options(self, tenant_id: str) -> dict[str, Any]:
        return repo_config_options(tenant_id, self.repo_dir(tenant_id), self.online_store, self.online_store_url,
                                   self.registry_cache_ttl_s)

    @staticmethod
    def import_feast() -> None:
        """Import Feast now; a server calls it on its start-up thread, before request threads exist.

        Feast's modules are instrumented by typeguard at import, which runs ``ast.parse``; CPython
        3.11 keeps the AST converter's recursion counter per interpreter, not per thread
        (gh-106905), so that import racing other threads fails at random with "SystemError: AST
        constructor recursion depth mismatch". Importing up front (~2 s, once) keeps a tenant's
        first lookup from doing it in a worker thread; the modules a store loads lazily on first
        use come too.
        """
        import importlib

        for name in _FEAST_MODULES:
            try:
                importlib.import_module(name)
            except ImportError:  # an optional store whose extra is not installed
                continue

    # -- the cached store per tenant -----------------------------------------------------------
    def _open(self, tenant_id: str) -> FeatureStore:
        from feast import FeatureStore, RepoConfig
        from feast.errors import FeastExtrasDependencyImportError, FeastModuleImportError

        from resources.data.storage import use_for_fsspec_s3

        use_for_fsspec_s3()  # s3:// sources: Feast's offline reads go through the project's S3 filesystem
        repo = self.repo_dir(tenant_id)
        try:
            config = RepoConfig(**self.repo_options(tenant_id), repo_path=repo)
        except (FeastExtrasDependencyImportError, FeastModuleImportError) as exc:
            raise DependencyUnavailable(
                f"the {self.online_store} online store needs an extra: pip install 'feast[{self.online_store}]'"
            ) from exc
        return FeatureStore(repo_path=str(repo), config=config)

    def _tenant(self, tenant_id: str, *, create: bool = False) -> _Tenant:
        validate_tenant(tenant_id)
        state = self._tenants.get(tenant_id)
        if state is not None:
            return state
        if not create and not self.is_applied(tenant_id):
            raise FeatureStoreNotFound(tenant_id, "no feature store for this tenant: its features were never applied")
        with self._guard:
            state = self._tenants.get(tenant_id)
            if state is None:
                state = self._tenants[tenant_id] = _Tenant(store=self._open(tenant_id))
        return state

    def store(self, tenant_id: str) -> FeatureStore:
        """The tenant's ``feast.FeatureStore`` (for benchmarks and tools; prefer the methods)."""
        return self._tenant(tenant_id).store

    @contextmanager
    def _writing(self, tenant_id: str, state: _Tenant) -> Iterator[None]:
        """Per-tenant lock in this process plus an exclusive lock file across processes."""
        import fcntl

        repo = self.repo_dir(tenant_id)
        repo.mkdir(parents=True, exist_ok=True)
        with state.lock, open(repo / ".mlservice.lock", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @contextmanager
    def _reading(self, state: _Tenant) -> Iterator[None]:
        # Feast's SQLite online store shares one connection across threads: serialise its use.
        if self.online_store == "sqlite":
            with state.lock:
                yield
        else:
            yield

    # -- definitions ---------------------------------------------------------------------------
    def apply_objects(self, tenant_id: str, objects: list, delete: list[str] = ()) -> dict[str, Any]:
        """Register Feast objects (``resources.features.definitions.feast_objects``) in the tenant's
        registry and delete the ones named in ``delete`` (``"feature_view:name"``, ...: their online
        tables go with them). The one place that writes a tenant's registry."""
        state = self._tenant(tenant_id, create=True)
        try:
            with self._writing(tenant_id, state):
                options = self.repo_options(tenant_id)
                (self.repo_dir(tenant_id) / "feature_store.yaml").write_text(feature_store_yaml(options))
                store = state.store
                doomed = [found for key in delete if (found := _registered(store, key)) is not None]
                store.apply(objects, objects_to_delete=doomed, partial=False)
                if self.online_store == "sqlite":
                    _use_wal(Path(options["online_store"]["path"]))
                self._load_catalog(state)
        except BaseException:
            if not self.is_applied(tenant_id):  # never cache a store whose first apply failed
                with self._guard:
                    self._tenants.pop(tenant_id, None)
            raise
        return {"tenant_id": tenant_id, "project": options["project"], "feature_views": sorted(state.views),
                "feature_services": sorted(state.services)}

    def apply(self, tenant_id: str) -> dict[str, Any]:
        """Register the demo's churn definitions (``resources/features/demo_churn_definitions.json``) over the
        tenant's churn source files (idempotent): what ``make up`` gives the demo tenant."""
        from resources.features.definitions import churn_document, feast_objects

        if not self.has_feature_data(tenant_id):
            raise FeatureStoreNotFound(tenant_id, f"no feature data for this tenant (expected {', '.join(SOURCE_FILES)} "
                                                  f"under its data area's features/ folder)")
        area = self.source_dir(tenant_id).parent
        return self.apply_objects(tenant_id, feast_objects(churn_document(), lambda source: str(area / source.path)))

    def ensure_applied(self, tenant_id: str) -> dict[str, Any]:
        """The tenant's registry as it is when it has one (its own definitions, or the demo's);
        else the demo's churn definitions applied over its churn files. ``applied`` says whether it applied."""
        if self.is_applied(tenant_id):
            state = self._catalog(self._tenant(tenant_id), refresh=True)
            return {"tenant_id": tenant_id, "project": state.store.project, "feature_views": sorted(state.views),
                    "feature_services": sorted(state.services), "applied": False}
        return {**self.apply(tenant_id), "applied": True}

    def _load_catalog(self, state: _Tenant) -> None:
        store = state.store
        store.refresh_registry()
        views = {}
        for fv in store.list_feature_views():
            source = getattr(fv.batch_source, "path", None)
            intervals = sorted(fv.materialization_intervals or [], key=lambda window: window[1])
            views[fv.name] = ViewInfo(
                name=fv.name, features=tuple(f.name for f in fv.features),
                join_keys={c.name: _python_type(c.dtype) for c in fv.entity_columns},
                ttl_seconds=fv.ttl.total_seconds() if fv.ttl else None, source_path=source,
                schema=tuple((c.name, type_name(c.dtype)) for c in [*fv.entity_columns, *fv.features]),
                online=bool(fv.online), timestamp_field=getattr(fv.batch_source, "timestamp_field", None) or "event_timestamp",
                last_materialized=(utc(intervals[-1][0], EPOCH), utc(intervals[-1][1], EPOCH)) if intervals else None,
            )
        services = {
            fs.name: [FeatureRef(p.name_to_use(), f.name) for p in fs.feature_view_projections for f in p.features]
            for fs in store.list_feature_services()
        }
        state.views, state.services, state.loaded_at = views, services, time.monotonic()

    def _catalog(self, state: _Tenant, refresh: bool = False) -> _Tenant:
        stale = time.monotonic() - state.loaded_at > self.registry_cache_ttl_s
        if refresh or stale or not state.loaded_at:
            with state.lock:
                self._load_catalog(state)
        return state

    def _resolve(self, state: _Tenant, refs: list[FeatureRef]) -> dict[str, type]:
        """Check every ref against the registry (re-read once if a name is unknown); returns the join keys."""
        for attempt in (0, 1):
            try:
                join_keys: dict[str, type] = {}
                for ref in refs:
                    view = state.views.get(ref.view)
                    if view is None:
                        raise FeatureViewNotFound(ref.view)
                    if ref.feature not in view.features:
                        raise FeatureNotFound(ref.view, ref.feature)
                    join_keys.update(view.join_keys)
                return join_keys
            except (FeatureViewNotFound, FeatureNotFound):
                if attempt or time.monotonic() - state.loaded_at < _CATALOG_RETRY_S:
                    raise
                self._catalog(state, refresh=True)
        raise AssertionError("unreachable")

    def feature_views(self, tenant_id: str) -> list[dict[str, Any]]:
        """``[{"name", "features", "join_keys", "ttl_seconds", "schema", "online", "last_materialized"}]``
        of the tenant's views, read from the registry now (materializations run in other processes)."""
        state = self._catalog(self._tenant(tenant_id), refresh=True)
        return [state.views[name].public() for name in sorted(state.views)]

    def feature_services(self, tenant_id: str) -> list[dict[str, Any]]:
        """``[{"name", "features": ["view:feature", ...]}]`` of the tenant's feature services."""
        state = self._catalog(self._tenant(tenant_id))
        return [{"name": name, "features": [str(r) for r in refs]} for name, refs in sorted(state.services.items())]

    def service_refs(self, tenant_id: str, service: str) -> list[str]:
        return [str(r) for r in self._service(self._tenant(tenant_id), service)]

    def _service(self, state: _Tenant, service: str) -> list[FeatureRef]:
        refs = self._catalog(state).services.get(service)
        if refs is None and time.monotonic() - state.loaded_at >= _CATALOG_RETRY_S:
            refs = self._catalog(state, refresh=True).services.get(service)
        if refs is None:
            raise FeatureServiceNotFound(service)
        return refs

    # -- online --------------------------------------------------------------------------------
    def online_features(self, tenant_id: str, feature_refs: list[str], entity_rows: list[dict]) -> list[dict[str, Any]]:
        """One dict per entity row, in order: join keys, features by bare name, ``status``
        (ok | partial | missing) and ``missing`` (names without a stored value)."""
        refs = parse_refs(feature_refs)
        state = self._catalog(self._tenant(tenant_id))
        return self._online(state, refs, entity_rows)

    def online_features_for_service(self, tenant_id: str, service: str, entity_rows: list[dict]) -> list[dict[str, Any]]:
        """Like ``online_features`` for every feature of a feature service (e.g. ``churn_v1``)."""
        state = self._tenant(tenant_id)
        return self._online(state, self._service(state, service), entity_rows)

    def _online(self, state: _Tenant, refs: list[FeatureRef], entity_rows: list[dict]) -> list[dict[str, Any]]:
        rows = check_entity_rows(entity_rows, self._resolve(state, refs))
        with self._reading(state):
            values = state.store.get_online_features(features=[str(r) for r in refs], entity_rows=rows).to_dict()
        return shape_rows(rows, [r.feature for r in refs], values)

    # -- materialization -------------------------------------------------------------------------
    def materialize(
        self, tenant_id: str, views: list[str] | None = None, incremental: bool = True,
        start: datetime | None = None, end: datetime | None = None,
    ) -> dict[str, Any]:
        """Load the offline sources into the online store. Incremental: from where the last run of
        each view ended (or ``end - ttl``) to ``end``; full: ``start`` (default 1970) to ``end``
        (default now). Returns ``{"tenant_id", "incremental", "end", "views": [{"name", "start",
        "end", "source_rows", "entities"}]}`` (rows and entities of the source in the window)."""
        state = self._catalog(self._tenant(tenant_id), refresh=True)
        names, start_at, end_at = self._plan(state, views, incremental, start, end)
        summaries = []
        with self._writing(tenant_id, state):
            for name in names:
                view_start = self._incremental_start(state, name, end_at) if incremental else start_at
                rows, entities = _window_counts(state.views[name], view_start, end_at)
                if incremental:
                    state.store.materialize_incremental(end_date=end_at, feature_views=[name])
                else:
                    state.store.materialize(start_date=start_at, end_date=end_at, feature_views=[name])
                summaries.append({"name": name, "start": view_start.isoformat(), "end": end_at.isoformat(),
                                  "source_rows": rows, "entities": entities})
            self._load_catalog(state)
        return {"tenant_id": tenant_id, "incremental": incremental, "end": end_at.isoformat(), "views": summaries}

    def check_materialization(
        self, tenant_id: str, views: list[str] | None, incremental: bool, start: datetime | None, end: datetime | None,
    ) -> tuple[list[str], datetime, datetime]:
        """What ``materialize`` would do, checked without doing it (the API answers 404/400 before
        it launches a run): the view names, and the window's start and end in UTC."""
        return self._plan(self._catalog(self._tenant(tenant_id)), views, incremental, start, end)

    @staticmethod
    def _plan(
        state: _Tenant, views: list[str] | None, incremental: bool, start: datetime | None, end: datetime | None,
    ) -> tuple[list[str], datetime, datetime]:
        names = list(dict.fromkeys(views)) if views else sorted(state.views)
        for name in names:
            if name not in state.views:
                raise FeatureViewNotFound(name)
        end_at = utc(end, datetime.now(UTC))
        if incremental and start is not None:
            raise InvalidRequest("start_date applies to a full materialization (incremental: false) only",
                                 {"incremental": True, "start_date": start.isoformat()})
        start_at = utc(start, EPOCH)
        if start_at >= end_at:
            raise InvalidRequest("start_date must be before end_date",
                                 {"start_date": start_at.isoformat(), "end_date": end_at.isoformat()})
        return names, start_at, end_at

    def _incremental_start(self, state: _Tenant, name: str, end_at: datetime) -> datetime:
        fv = state.store.get_feature_view(name)
        if fv.most_recent_end_time is not None:
            return utc(fv.most_recent_end_time, EPOCH)
        return end_at - fv.ttl if fv.ttl else EPOCH

    # -- offline (training sets) -----------------------------------------------------------------
    def historical_features(
        self, tenant_id: str, entity_df: pd.DataFrame, features: list[str] | None = None,
        feature_service: str | None = None,
    ) -> pd.DataFrame:
        """Point-in-time join: each entity row gets, per view, the latest value at or before its
        ``event_timestamp`` and within the view's ttl (NaN otherwise). Every entity row comes back,
        in order; columns: the entity frame's, then the features by bare name."""
        import pandas as pd

        if (features is None) == (feature_service is None):
            raise InvalidRequest("give either feature refs or a feature service")
        state = self._catalog(self._tenant(tenant_id))
        refs = parse_refs(features) if features is not None else self._service(state, feature_service)
        join_keys = self._resolve(state, refs)
        needed = [*join_keys, "event_timestamp"]
        absent = [c for c in needed if c not in entity_df.columns]
        if absent:
            raise InvalidRequest(f"the entity frame lacks column(s) {absent}", {"required": needed})
        frame = entity_df.copy()
        frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
        frame["_mlservice_row"] = range(len(frame))
        joined = state.store.get_historical_features(entity_df=frame, features=[str(r) for r in refs]).to_df()
        # Feast 0.67's file (dask) store drops an entity row whose feature rows all lie after its
        # timestamp (while it keeps one with no rows at all): put every row back, in order.
        names = [r.feature for r in refs]
        values = joined.set_index("_mlservice_row")[names].reindex(range(len(frame)))
        return pd.concat([entity_df.reset_index(drop=True), values.reset_index(drop=True)], axis=1)


def _registered(store: FeatureStore, key: str) -> Any:
    """The registry's object for ``"<kind>:<name>"`` (None when it holds none)."""
    from feast.errors import DataSourceNotFoundException, FeastObjectNotFoundException

    kind, _, name = key.partition(":")
    getter = {"entity": store.get_entity, "source": store.get_data_source, "feature_view": store.get_feature_view,
              "feature_service": store.get_feature_service}[kind]
    try:
        return getter(name)
    except (FeastObjectNotFoundException, DataSourceNotFoundException):
        return None


def _use_wal(path: Path) -> None:
    """WAL lets API reads go on while a run worker writes a materialization (persistent per file)."""
    import sqlite3

    if path.is_file():
        with sqlite3.connect(path) as conn:
            conn.execute("PRAGMA journal_mode=WAL")


def _window_counts(view: ViewInfo, start: datetime, end: datetime) -> tuple[int | None, int | None]:
    """Source rows and distinct entities with ``start <= <timestamp field> <= end`` (Feast's file
    store window); None when the source is not a local parquet file."""
    if not view.source_path or "://" in view.source_path or not Path(view.source_path).is_file():
        return None, None
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(view.source_path, columns=[*view.join_keys, view.timestamp_field])
    ts = table.column(view.timestamp_field)
    mask = pc.and_(pc.greater_equal(ts, start), pc.less_equal(ts, end))
    window = table.filter(mask)
    entities = len(window.group_by(list(view.join_keys)).aggregate([])) if window.num_rows else 0
    return window.num_rows, entities
