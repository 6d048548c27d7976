"""The model cache: one owned object on ``app.state``, keyed by (tenant, model, version).

- Version specs resolve through ``Resolver`` (cached, stale-while-revalidate, dropped at once on a
  stage change through this API; unknown ids, versions and names remembered for a few seconds).
- Loads are single-flight: concurrent misses for one key wait on the same load.
- Bounded per tenant (``tenant_max_models``/``tenant_max_bytes``: a tenant's loads evict only its
  own versions, its non-production ones first) and globally (``max_models``/``max_bytes``: least
  recently used first, never a version that is some tenant's production version). An evicted
  model's batcher ends and a debounced ``Refreezer`` lets the collector reclaim its cycles.
- A load the platform refused (a version not registered through it, files changed since) is
  remembered for ``negative_ttl_s`` with its error: a client asking again costs no download.
- ``peek`` answers whether a version is loaded without loading it (OIP ready and metadata).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from mlservice.inference.bounds import input_error
from mlservice.inference.loaded_model import LoadedModel
from mlservice.inference.loader import load_model_version
from resources.errors import DomainError, ModelLoadFailed
from resources.models.change_counters import ModelGenerations
from resources.models.registry import ModelRegistry
from serving_api.heap import Refreezer, freeze_long_lived
from serving_api.online.arrivals import Arrivals
from serving_api.online.expiring import Expiring
from serving_api.online.micro_batcher import MicroBatcher
from serving_api.online.resolver import Resolved, Resolver

__all__ = ["ModelCache", "Resolved", "Served"]
log = logging.getLogger("mlservice.api.cache")


@dataclass
class Served:
    model: LoadedModel
    batcher: MicroBatcher


class ModelCache(Resolver):
    def __init__(
        self, registry: ModelRegistry, *, max_models: int = 32, max_bytes: int = 4 << 30, resolve_ttl_s: float = 10.0,
        max_batch: int = 64, max_wait_ms: float = 2.0, tenant_max_models: int = 8, tenant_max_bytes: int = 1 << 30,
        negative_ttl_s: float = 5.0, generations: ModelGenerations | None = None, arrivals: Arrivals | None = None,
    ) -> None:
        super().__init__(registry, resolve_ttl_s=resolve_ttl_s, negative_ttl_s=negative_ttl_s, generations=generations)
        self.max_models, self.max_bytes = max_models, max_bytes
        self.tenant_max_models, self.tenant_max_bytes = tenant_max_models, tenant_max_bytes
        self.max_batch, self.max_wait_ms, self.arrivals = max_batch, max_wait_ms, arrivals
        self._models: OrderedDict[tuple[str, str, str], Served] = OrderedDict()
        self._inflight: dict[tuple[str, str, str], asyncio.Task] = {}
        self._warming: set[asyncio.Task] = set()
        self.loads = 0  # how many times a model was actually loaded (single-flight shows here)
        self.evictions = 0
        self.refreezer = Refreezer()
        self._refused = Expiring(negative_ttl_s)  # (tenant, model, version) -> the DomainError of its load
        self._executor: ThreadPoolExecutor | None = None

    # -- loading ---------------------------------------------------------------------------
    async def get(self, tenant_id: str, model_id: str, spec: str | None) -> Served:
        resolved = await self.resolve(tenant_id, model_id, spec)
        key = (tenant_id, model_id, resolved.version)
        served = self._models.get(key)
        if served is not None:
            self._models.move_to_end(key)
            return served
        refused = self._refused.get(key)
        if refused is not None:
            raise refused
        task = self._inflight.get(key)
        if task is None:
            # The load runs as its own task: a caller that times out or disconnects does not
            # cancel it for the others waiting on the same key.
            task = self._inflight[key] = asyncio.get_running_loop().create_task(self._load_and_keep(key, resolved))
        return await asyncio.shield(task)

    def invalidate(self, tenant_id: str, model_id: str) -> None:
        super().invalidate(tenant_id, model_id)
        self._refused.forget(lambda k: k[0] == tenant_id and k[1] == model_id)

    def peek(self, tenant_id: str, model_id: str, version: str) -> Served | None:
        """The loaded version, or None; never loads (and does not count as a use)."""
        return self._models.get((tenant_id, model_id, version))

    async def _load_and_keep(self, key: tuple[str, str, str], resolved: Resolved) -> Served:
        try:
            try:
                model = await asyncio.to_thread(self._load, key[0], key[1], resolved)
            except DomainError as exc:
                self._refused.add(key, exc)
                raise
            except Exception as exc:  # not a refusal we know: the platform's fault, said as such (503), not a 500
                log.exception("model %s version %s of tenant %s did not load", key[1], key[2], key[0])
                raise ModelLoadFailed(f"version {key[2]} of model '{key[1]}' could not be loaded ({type(exc).__name__}); "
                                      "the server's log has the details", {"model_id": key[1], "version": key[2]}) from None
            served = Served(model, MicroBatcher(
                model.batch_predict, executor=self.executor, max_batch=self.max_batch, max_wait_ms=self.max_wait_ms,
                on_error=functools.partial(input_error, model), arrivals=self.arrivals,
            ))
            self._models[key] = served
            self._evict(key[0])
            freeze_long_lived()
            return served
        finally:
            self._inflight.pop(key, None)

    def _load(self, tenant_id: str, model_id: str, resolved: Resolved) -> LoadedModel:
        self.loads += 1
        return load_model_version(registry=self.registry, tenant_id=tenant_id, model_id=model_id, resolved=resolved)

    # -- bounds ----------------------------------------------------------------------------
    def _is_production(self, key: tuple[str, str, str]) -> bool:
        return self._production.get((key[0], key[1])) == key[2]

    def _bytes(self, keys) -> int:
        return sum(self._models[k].model.approx_bytes for k in keys)

    def _evict(self, tenant_id: str) -> None:
        """After a load by ``tenant_id``: its own share first, then the global bound."""
        while True:
            mine = [k for k in self._models if k[0] == tenant_id]  # least recently used first
            if len(mine) <= 1 or (len(mine) <= self.tenant_max_models and self._bytes(mine) <= self.tenant_max_bytes):
                break
            self._drop(next((k for k in mine if not self._is_production(k)), mine[0]))
        while len(self._models) > self.max_models or (len(self._models) > 1 and self._bytes(self._models) > self.max_bytes):
            victim = next((k for k in self._models if not self._is_production(k)), None)
            if victim is None:
                break  # only production versions left: each within its tenant's share
            self._drop(victim)

    def _drop(self, key: tuple[str, str, str]) -> None:
        served = self._models.pop(key)
        served.batcher.close()  # its worker ends once what is queued is answered
        self.evictions += 1
        self.refreezer.request()

    @property
    def executor(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="predict")
        return self._executor

    def close(self) -> None:
        """Drop loaded models and the predict threads (a later lifespan starts afresh)."""
        for served in self._models.values():
            served.batcher.close()
        self._models.clear()
        self._inflight.clear()
        for task in [*self._refreshing.values(), *self._warming]:
            task.cancel()
        self._refreshing.clear()
        self._warming.clear()
        self.refreezer.cancel()
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
            except Exception:
                log.warning("warming %s/%s (%s) failed", tenant_id, model_id, spec, exc_info=True)

        task = asyncio.get_running_loop().create_task(warm())
        self._warming.add(task)
        task.add_done_callback(self._warming.discard)

    async def warm_production(self) -> int:
        """Load every tenant's production versions (at start-up, in the background)."""
        found = await asyncio.to_thread(self.registry.production_models, self.max_models)
        warmed = 0
        for tenant_id, model_id in found:
            try:
                await self.get(tenant_id, model_id, "production")
                warmed += 1
            except Exception:
                continue
        return warmed
