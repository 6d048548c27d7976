"""Version resolution for the model cache: (tenant, model, spec) -> the version to serve.

- A spec is none (production, else the newest), a semantic version or a stage name. The answer
  is cached and dropped at once when this API changes the model's stage (``invalidate``). After
  ``resolve_ttl_s`` an entry is stale: it is still answered at once while one background task
  re-reads the registry (stale-while-revalidate), so other replicas see a stage change within
  about the TTL and no request waits on the registry for a known model. With a shared Redis
  (``generations``: ``resources.models.change_counters``) each answer first reads the model's change
  counter, and a counter other than the one read with the resolution drops it: a change made
  through another process or a run is seen by the next request.
- Unknown model ids, versions and names are remembered for ``negative_ttl_s`` (``Expiring``): a
  repeated bogus request costs no registry query.
- It also tracks each model's production version as last seen (the cache never evicts those for
  another tenant's load) and maps OIP model names to ids.
"""

from __future__ import annotations

import asyncio
import logging
import time

from resources.errors import ModelNotFound, VersionNotFound
from resources.models.change_counters import ModelGenerations
from resources.models.registry import ModelRegistry
from resources.models.registry import ResolvedVersion as Resolved  # the cache keeps the registry's answer
from serving_api.online.expiring import Expiring

log = logging.getLogger("mlservice.api.cache")
_ANY = object()  # negative entry for a whole model: every spec of an unknown model id


class Resolver:
    def __init__(self, registry: ModelRegistry, *, resolve_ttl_s: float = 10.0, negative_ttl_s: float = 5.0,
                 generations: ModelGenerations | None = None) -> None:
        self.registry, self.resolve_ttl_s, self.generations = registry, resolve_ttl_s, generations
        # (tenant, model, spec) -> (when resolved, the answer, the model's change counter read before it)
        self._resolutions: dict[tuple[str, str, str | None], tuple[float, Resolved, int | None]] = {}
        self._refreshing: dict[tuple[str, str, str | None], asyncio.Task] = {}
        self._production: dict[tuple[str, str], str] = {}  # (tenant, model) -> its production version, as last seen
        self._missing = Expiring(negative_ttl_s)  # (tenant, model, spec or _ANY) known not to exist
        self._names: dict[tuple[str, str], tuple[float, str, str]] = {}  # (tenant, name) -> (time, model id, name)
        self._missing_names = Expiring(negative_ttl_s)

    def _resolve_blocking(self, tenant_id: str, model_id: str, spec: str | None) -> Resolved:
        return self.registry.resolve_version(tenant_id, model_id, spec)

    def _generation(self, tenant_id: str, model_id: str) -> int | None:
        return None if self.generations is None else self.generations.current(tenant_id, model_id)

    async def resolve(self, tenant_id: str, model_id: str, spec: str | None) -> Resolved:
        key = (tenant_id, model_id, spec)
        generation = self._generation(tenant_id, model_id)
        hit = self._resolutions.get(key)
        if hit is not None and generation is not None and hit[2] != generation:  # changed elsewhere
            self.invalidate(tenant_id, model_id)
            hit = None
        if hit is None:
            if (tenant_id, model_id, _ANY) in self._missing:
                raise ModelNotFound(model_id)
            if key in self._missing:
                raise VersionNotFound(model_id, spec or "current")
            try:
                resolved = await asyncio.to_thread(self._resolve_blocking, tenant_id, model_id, spec)
            except ModelNotFound:
                self._missing.add((tenant_id, model_id, _ANY))
                raise
            except VersionNotFound:
                self._missing.add(key)
                raise
            self._resolutions[key] = (time.monotonic(), resolved, generation)
            self._note(tenant_id, model_id, resolved)
            return resolved
        if time.monotonic() - hit[0] >= self.resolve_ttl_s and key not in self._refreshing:
            self._refreshing[key] = asyncio.get_running_loop().create_task(self._refresh(key))
        return hit[1]

    async def _refresh(self, key: tuple[str, str, str | None]) -> None:
        generation = self._generation(key[0], key[1])
        try:
            resolved = await asyncio.to_thread(self._resolve_blocking, *key)
        except (ModelNotFound, VersionNotFound):
            self._resolutions.pop(key, None)  # gone or no longer at that stage: the next request re-resolves
        except Exception:
            log.warning("re-resolving %s failed; serving the cached resolution", key, exc_info=True)
        else:
            if key in self._resolutions:  # not invalidated meanwhile
                self._resolutions[key] = (time.monotonic(), resolved, generation)
                self._note(key[0], key[1], resolved)
        finally:
            self._refreshing.pop(key, None)

    def _note(self, tenant_id: str, model_id: str, resolved: Resolved) -> None:
        """Remember which version is the model's production version (protected from eviction)."""
        if resolved.stage == "production":
            self._production[(tenant_id, model_id)] = resolved.version
        elif self._production.get((tenant_id, model_id)) == resolved.version:
            del self._production[(tenant_id, model_id)]

    def invalidate(self, tenant_id: str, model_id: str) -> None:
        """Forget cached resolutions of a model (its stages or versions changed), its negative
        entries and the tenant's unknown names. Loaded versions stay valid."""
        for key in [k for k in self._resolutions if k[0] == tenant_id and k[1] == model_id]:
            self._resolutions.pop(key, None)
            refresh = self._refreshing.pop(key, None)
            if refresh is not None:
                refresh.cancel()
        self._production.pop((tenant_id, model_id), None)  # the next resolution of "production" says which
        self._missing.forget(lambda k: k[0] == tenant_id and k[1] == model_id)
        self._missing_names.forget(lambda k: k[0] == tenant_id)

    async def model_id_for_name(self, tenant_id: str, name: str) -> tuple[str, str]:
        """(model id, name) of the tenant's model called ``name`` (OIP addresses models by name)."""
        key = (tenant_id, name)
        hit = self._names.get(key)
        if hit is not None and time.monotonic() - hit[0] < self.resolve_ttl_s:
            return hit[1], hit[2]
        if key in self._missing_names:
            raise ModelNotFound(name)
        record = await asyncio.to_thread(self.registry.find_by_name, tenant_id, name)
        if record is None:
            self._names.pop(key, None)
            self._missing_names.add(key)
            raise ModelNotFound(name)
        self._names[key] = (time.monotonic(), record.model_id, record.name)
        return record.model_id, record.name
