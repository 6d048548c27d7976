"""What-if variants of the platform API for the serving benchmark (investigation only).

``ABLATE=name,name,...`` selects monkeypatches applied before ``serving_api.main.create_app``
builds the app; run it as ``uvicorn api_ablations:create_app --factory`` with this directory on
PYTHONPATH (``serving_vs_mlflow.py --ablate ...`` does that). Nothing here changes the shipped
code; each patch is a prototype of a fix suggested in benchmarks/README.md, kept small so its
effect on throughput and latency can be measured on its own.

- ``fastframe``: ``to_frame`` validates exactly as before (same ``_problem`` checks, same 422),
  then builds the DataFrame from one typed numpy array per column instead of a row-wise
  DataFrame plus one ``astype`` per column (about 480 -> 45 us per one-row request).
- ``noaudit``: successful POST /api/v1/predictions are not written to the audit log (the
  prediction log already holds one durable record per prediction); refusals still are.
- ``jwtcache``: ``TokenVerifier.verify`` remembers the Principal of a token it verified, keyed by
  the whole token string (signature included), until the token's ``exp`` (at most 60 s).
- ``fastpredict``: RandomForestClassifier -> mean of per-tree ``predict_proba(X,
  check_input=False)`` (public API, bit-identical, no joblib dispatch: ~4.5 -> ~0.8 ms a call);
  other sklearn estimators -> ``predict_proba`` on a float ndarray through a shallow copy without
  ``feature_names_in_`` (skips pandas feature-name validation). Each fast path is checked against
  the estimator's own ``predict_proba`` on the input example at load and dropped if it differs.
- ``concat_in_thread``: the micro-batcher concatenates a batch's frames in the predict thread
  rather than on the event loop.
- ``asyncdeps``: ``get_prediction_service`` (a plain ``def`` dependency, which FastAPI runs in
  its threadpool: one thread hop per request) becomes ``async def``.
- ``gcfreeze``: ``gc.freeze()`` once the app is built and again after each model load, so the
  ~500k objects of the imported libraries (mlflow, dagster, pandas, sklearn) leave the cyclic
  GC's generations; a full collection otherwise walks them all (~200 ms here) and stalls the loop.
- ``bgcheckpoint``: SQLite WAL checkpoints leave the commit path: the API's connections get
  ``PRAGMA wal_autocheckpoint=0`` and one background thread runs ``wal_checkpoint(PASSIVE)`` every
  second on its own connection. Otherwise every ~1000 pages one prediction-log commit also
  checkpoints (and, with ``synchronous=NORMAL``, fsyncs the database), and every request waiting
  on that group commit waits for it.
- ``swr_resolve``: version resolution is stale-while-revalidate: an expired entry is still
  answered at once while ONE background task refreshes it (today every request that arrives
  while the 10 s TTL is expired runs its own registry query in a thread).
- ``nolog``: the prediction log is NOT written (``record`` only builds the row). Only to measure
  what the durable log costs; not a proposal (the log is a requirement).
"""

from __future__ import annotations

import copy
import os
import time
from typing import Any

import numpy as np
import pandas as pd

ABLATIONS = {"fastframe", "noaudit", "jwtcache", "fastpredict", "concat_in_thread", "asyncdeps", "gcfreeze", "bgcheckpoint", "swr_resolve", "nolog"}
ACTIVE = set(filter(None, os.environ.get("ABLATE", "").split(",")))
unknown = ACTIVE - ABLATIONS
if unknown:
    raise SystemExit(f"unknown ABLATE entries: {sorted(unknown)}; known: {sorted(ABLATIONS)}")


def _fastframe() -> None:
    import serving_api.inference.validation as validation
    import serving_api.services.predictions as service
    from serving_api.inference.loaded import FLOAT_TYPES, INTEGER_TYPES

    original = validation.to_frame

    def to_frame(rows: list[dict[str, Any]], features: list) -> pd.DataFrame:
        names = [f.name for f in features]
        name_set = set(names)
        for row in rows:
            if len(row) != len(names) or set(row) != name_set:
                return original(rows, features)  # the original builds the 422 with details
            for spec in features:
                if validation._problem(spec, row[spec.name]):
                    return original(rows, features)
        columns = {}
        for spec in features:
            values = [row[spec.name] for row in rows]
            if spec.type in INTEGER_TYPES:
                columns[spec.name] = np.asarray(values, dtype=np.int64)
            elif spec.type in FLOAT_TYPES:
                columns[spec.name] = np.asarray(values, dtype=np.float64)
            else:
                columns[spec.name] = pd.Series(values, dtype=object if spec.type == "string" else None)
        return pd.DataFrame(columns, copy=False)

    service.to_frame = to_frame


def _noaudit() -> None:
    from resources.audit import AuditLog

    record = AuditLog.record

    def patched(self, **fields: Any) -> None:
        if fields.get("path", "").startswith("/api/v1/predictions") and (fields.get("status") or 500) < 400:
            return
        record(self, **fields)

    AuditLog.record = patched


def _jwtcache() -> None:
    import jwt

    from serving_api.auth import TokenVerifier

    verify = TokenVerifier.verify
    cache: dict[str, tuple[float, Any]] = {}

    def patched(self, token: str):
        now = time.time()
        hit = cache.get(token)
        if hit is not None and now < hit[0]:
            return hit[1]
        principal = verify(self, token)  # raises on anything invalid: nothing is cached then
        claims = jwt.decode(token, options={"verify_signature": False})
        if len(cache) > 10_000:
            cache.clear()
        cache[token] = (min(float(claims["exp"]), now + 60), principal)
        return principal

    TokenVerifier.verify = patched


def _fastpredict() -> None:
    import serving_api.inference.loaded as loaded

    original = loaded._sklearn_predictor
    load = loaded.load_model_version

    def fast_predictor(estimator: Any, model_type: str):
        from sklearn.ensemble import RandomForestClassifier

        slow = original(estimator, model_type)
        if model_type != "classification" or not hasattr(estimator, "predict_proba"):
            return slow
        classes = np.asarray(estimator.classes_)
        if type(estimator) is RandomForestClassifier and estimator.n_outputs_ == 1:
            trees = list(estimator.estimators_)

            def predict(frame: pd.DataFrame):
                X = np.ascontiguousarray(frame.to_numpy(dtype=np.float32))
                proba = trees[0].predict_proba(X, check_input=False).astype(float)
                for tree in trees[1:]:
                    proba += tree.predict_proba(X, check_input=False)
                proba /= len(trees)
                return classes[proba.argmax(axis=1)], proba

            return predict
        if hasattr(estimator, "feature_names_in_") and not hasattr(estimator, "steps"):
            bare = copy.copy(estimator)
            del bare.feature_names_in_

            def predict(frame: pd.DataFrame):
                proba = np.asarray(bare.predict_proba(frame.to_numpy(dtype=np.float64)), dtype=float)
                return classes[proba.argmax(axis=1)], proba

            return predict
        return slow

    def patched_load(**kwargs: Any):
        model = load(**kwargs)
        if model.estimator is None or model.background is None:
            return model
        fast = fast_predictor(model.estimator, model.model_type)
        example = model.background[model.feature_names]
        try:
            _, want = original(model.estimator, model.model_type)(example)
            _, got = fast(example)
            same = want is not None and got is not None and np.allclose(want, got, rtol=0, atol=1e-12)
        except Exception:  # noqa: BLE001 - any trouble: keep the slow path
            same = False
        if same:
            model.predict_fn = fast
        return model

    loaded.load_model_version = patched_load
    import serving_api.inference.cache as cache

    cache.load_model_version = patched_load


def _concat_in_thread() -> None:
    import asyncio

    from serving_api.inference.batcher import MicroBatcher

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            frames = [frame for frame, _ in batch]

            def call(frames=frames):
                combined = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
                return self.predict_fn(combined)

            try:
                predictions, probabilities = await loop.run_in_executor(self.executor, call)
            except Exception as exc:  # noqa: BLE001
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self.batches += 1
            start = 0
            for frame, future in batch:
                end = start + len(frame)
                if not future.done():
                    future.set_result((predictions[start:end], None if probabilities is None else probabilities[start:end]))
                start = end

    MicroBatcher._run = _run


def _asyncdeps() -> None:
    # Must run before serving_api.routes.* are imported: they capture PredictionServiceDep then.
    from typing import Annotated

    from fastapi import Depends, Request

    import serving_api.deps as deps
    from serving_api.services.predictions import PredictionService

    async def get_prediction_service(request):
        return request.app.state.prediction_service

    # real objects, not strings (this module uses postponed annotations; FastAPI reads these)
    get_prediction_service.__annotations__ = {"request": Request, "return": PredictionService}

    deps.get_prediction_service = get_prediction_service
    deps.PredictionServiceDep = Annotated[PredictionService, Depends(get_prediction_service)]


def _gcfreeze() -> None:
    import gc

    from serving_api.inference.cache import ModelCache

    keep = ModelCache._load_and_keep

    async def _load_and_keep(self, key, resolved):
        served = await keep(self, key, resolved)
        gc.collect()
        gc.freeze()
        return served

    ModelCache._load_and_keep = _load_and_keep


def _bgcheckpoint() -> None:
    import sqlite3
    import threading

    import resources.state_db as state_db

    pragmas = state_db._sqlite_pragmas
    started: set[str] = set()

    def checkpointer(path: str) -> None:
        conn = sqlite3.connect(path, timeout=30, check_same_thread=False)
        while True:
            time.sleep(1.0)
            try:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error:
                pass

    def patched(dbapi_connection, record) -> None:
        pragmas(dbapi_connection, record)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA wal_autocheckpoint=0")
        path = next((row[2] for row in cursor.execute("PRAGMA database_list") if row[1] == "main"), "")
        cursor.close()
        if path and path not in started:
            started.add(path)
            threading.Thread(target=checkpointer, args=(path,), name="wal-checkpointer", daemon=True).start()

    state_db._sqlite_pragmas = patched


def _swr_resolve() -> None:
    import asyncio

    from serving_api.inference.cache import ModelCache

    async def resolve(self, tenant_id, model_id, spec):
        key = (tenant_id, model_id, spec)
        hit = self._resolutions.get(key)
        now = time.monotonic()
        if hit is not None:
            if now - hit[0] >= self.resolve_ttl_s:
                refreshing = self.__dict__.setdefault("_refreshing", {})
                if key not in refreshing:
                    async def refresh():
                        try:
                            resolved = await asyncio.to_thread(self._resolve_blocking, tenant_id, model_id, spec)
                            self._resolutions[key] = (time.monotonic(), resolved)
                        except Exception:  # noqa: BLE001 - keep serving the old entry; retry next time
                            pass
                        finally:
                            refreshing.pop(key, None)

                    refreshing[key] = asyncio.get_running_loop().create_task(refresh())
            return hit[1]
        resolved = await asyncio.to_thread(self._resolve_blocking, tenant_id, model_id, spec)
        self._resolutions[key] = (now, resolved)
        return resolved

    ModelCache.resolve = resolve


def _nolog() -> None:
    from resources.prediction_log import PredictionLog

    async def record(self, **fields: Any) -> None:
        self._row(fields)

    PredictionLog.record = record


for name in sorted(ACTIVE):
    globals()[f"_{name}"]()


def create_app():
    from serving_api.main import create_app as create

    app = create()
    if "gcfreeze" in ACTIVE:
        import gc

        gc.collect()
        gc.freeze()
    return app
