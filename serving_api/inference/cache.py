"""The model cache: one owned object on ``app.state``, keyed by (tenant, model, version).

- Version specs (none, a semantic version, or a stage name) resolve through the registry; the
  resolution is cached and dropped at once when this API changes the model's stage
  (``invalidate``). After ``resolve_ttl_s`` an entry is stale: it is still answered at once while
  one background task re-reads the registry (stale-while-revalidate), so other replicas see a
  stage change within about the TTL and no request waits on the registry for a known model.
- Loads are single-flight: concurrent misses for one key wait on the same load.
- Bounded by count and by approximate memory, least recently used first out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from collections import OrderedDict
from dataclasses import dataclass

from resources.errors import ModelNotFound, VersionNotFound
from resources.registry import ModelRegistry
from resources.versioning import STAGES, SemVer
from serving_api.heap import freeze_long_lived
from serving_api.inference.batcher import MicroBatcher
from serving_api.inference.loaded import LoadedModel, load_model_version

log = logging.getLogger("mlservice.api.cache")


@dataclass
class Resolved:
    version: str
    mlflow_version: int
    name: str
    mlflow_name: str
    model_type: str
    framework: str


@dataclass
class Served:
    model: LoadedModel
    batcher: MicroBatcher


class ModelCache:
    def __init__(
        self, registry: ModelRegistry, *, max_models: int = 32, max_bytes: int = 4 << 30, resolve_ttl_s: float = 10.0,
        max_batch: int = 64, max_wait_ms: float = 2.0,
    ) -> None:
        self.registry = registry
        self.max_models, self.max_bytes, self.resolve_ttl_s = max_models, max_bytes, resolve_ttl_s
        self.max_batch, self.max_wait_ms = max_batch, max_wait_ms
        self._models: OrderedDict[tuple[str, str, str], Served] = OrderedDict()
        self._inflight: dict[tuple[str, str, str], asyncio.Task] = {}
        self._resolutions: dict[tuple[str, str, str | None], tuple[float, Resolved]] = {}
        self._refreshing: dict[tuple[str, str, str | None], asyncio.Task] = {}
        self._warming: set[asyncio.Task] = set()
        self.loads = 0  # how many times a model was actually loaded (single-flight shows here)
        self._executor: ThreadPoolExecutor | None = None

    # -- resolution ------------------------------------------------------------------------
    def _resolve_blocking(self, tenant_id: str, model_id: str, spec: str | None) -> Resolved:
        record = self.registry.get_model(tenant_id, model_id)
        versions = self.registry.list_versions(tenant_id, model_id)
        if not versions:
            raise VersionNotFound(model_id, spec or "current")
        chosen = None
        if spec is None:
            chosen = next((v for v in versions if v.stage == "production"), versions[0])  # newest first
        elif spec in STAGES:
            chosen = next((v for v in versions if v.stage == spec), None)
        elif SemVer.is_valid(spec):
            chosen = next((v for v in versions if v.version == spec), None)
        if chosen is None:
            raise VersionNotFound(model_id, spec or "current")
        return Resolved(chosen.version, chosen.mlflow_version, record.name, record.mlflow_name,
                        record.model_type, record.framework)

    async def resolve(self, tenant_id: str, model_id: str, spec: str | None) -> Resolved:
        key = (tenant_id, model_id, spec)
        hit = self._resolutions.get(key)
        if hit is None:
            resolved = await asyncio.to_thread(self._resolve_blocking, tenant_id, model_id, spec)
            self._resolutions[key] = (time.monotonic(), resolved)
            return resolved
        if time.monotonic() - hit[0] >= self.resolve_ttl_s and key not in self._refreshing:
            self._refreshing[key] = asyncio.get_running_loop().create_task(self._refresh(key))
        return hit[1]

    async def _refresh(self, key: tuple[str, str, str | None]) -> None:
        try:
            resolved = await asyncio.to_thread(self._resolve_blocking, *key)
        except (ModelNotFound, VersionNotFound):
            self._resolutions.pop(key, None)  # gone or no longer at that stage: the next request re-resolves
        except Exception:  # noqa: BLE001 - registry unreachable: keep serving what we know, retry later
            log.warning("re-resolving %s failed; serving the cached resolution", key, exc_info=True)
        else:
            if key in self._resolutions:  # not invalidated meanwhile
                self._resolutions[key] = (time.monotonic(), resolved)
        finally:
            self._refreshing.pop(key, None)

    def invalidate(self, tenant_id: str, model_id: str) -> None:
        """Forget cached resolutions of a model (its stages changed). Loaded versions stay valid."""
        for key in [k for k in self._resolutions if k[0] == tenant_id and k[1] == model_id]:
            self._resolutions.pop(key, None)
            refresh = self._refreshing.pop(key, None)
            if refresh is not None:
                refresh.cancel()

    # -- loading ---------------------------------------------------------------------------
    async def get(self, tenant_id: str, model_id: str, spec: str | None) -> Served:
        resolved = await self.resolve(tenant_id, model_id, spec)
        key = (tenant_id, model_id, resolved.version)
        served = self._models.get(key)
        if served is not None:
            self._models.move_to_end(key)
            return served
        task = self._inflight.get(key)
        if task is None:
            # The load runs as its own task: a caller that times out or disconnects does not
            # cancel it for the others waiting on the same key.
            task = self._inflight[key] = asyncio.get_running_loop().create_task(self._load_and_keep(key, resolved))
        return await asyncio.shield(task)

    async def _load_and_keep(self, key: tuple[str, str, str], resolved: Resolved) -> Served:
        try:
            model = await asyncio.to_thread(self._load, key[0], key[1], resolved)
            served = Served(model, MicroBatcher(
                model.batch_predict, executor=self.executor, max_batch=self.max_batch, max_wait_ms=self.max_wait_ms
            ))
            self._models[key] = served
            self._evict()
            freeze_long_lived()
            return served
        finally:
            self._inflight.pop(key, None)

    def _load(self, tenant_id: str, model_id: str, resolved: Resolved) -> LoadedModel:
        self.loads += 1
        return load_model_version(
            tracking_uri=self.registry.tracking_uri, mlflow_name=resolved.mlflow_name,
            mlflow_version=resolved.mlflow_version, tenant_id=tenant_id, model_id=model_id, name=resolved.name,
            version=resolved.version, model_type=resolved.model_type, framework=resolved.framework,
        )

    def _evict(self) -> None:
        while len(self._models) > self.max_models or (
            len(self._models) > 1 and sum(s.model.approx_bytes for s in self._models.values()) > self.max_bytes
        ):
            self._models.popitem(last=False)

    @property
    def executor(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="predict")
        return self._executor

    def close(self) -> None:
        """Drop loaded models and the predict threads (a later lifespan starts afresh)."""
        self._models.clear()
        self._inflight.clear()
        for task in [*self._refreshing.values(), *self._warming]:
            task.cancel()
        self._refreshing.clear()
        self._warming.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def cached_keys(self) -> list[tuple[str, str, str]]:
        return list(self._models)

    def warm_in_background(self, tenant_id: str, model_id: str, spec: str | None) -> None:
        """Load a version now, in the background (e.g. right after its promotion); best effort."""

        async def warm() -> None:
            try:
                await self.get(tenant_id, model_id, spec)
            except Exception:  # noqa: BLE001 - a request will load it (and report any error) later
                log.warning("warming %s/%s (%s) failed", tenant_id, model_id, spec, exc_info=True)

        task = asyncio.get_running_loop().create_task(warm())
        self._warming.add(task)
        task.add_done_callback(self._warming.discard)

    async def warm_production(self) -> int:
        """Load every tenant's production versions (at start-up, in the background)."""
        from resources.registry import T_MODEL_ID, T_STAGE, T_TENANT

        found = await asyncio.to_thread(
            self.registry.client.search_registered_models, filter_string=f"tags.`{T_STAGE}` = 'production'", max_results=self.max_models
        )
        warmed = 0
        for rm in found:
            try:
                await self.get(rm.tags[T_TENANT], rm.tags[T_MODEL_ID], "production")
                warmed += 1
            except Exception:  # noqa: BLE001 - warming is best effort; requests load on demand
                continue
        return warmed
