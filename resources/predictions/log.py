"""The prediction log: one row per served prediction, committed before the response goes out.

``await PredictionLog.record(...)`` returns only once the row is COMMITTED, so a response sent
after it can never lose its record, even if the process is killed right after. To keep that cheap,
commits are grouped: callers put their row on a queue and wait; one background writer thread
takes everything queued (up to ``max_batch``), inserts it in ONE transaction, commits, and then
wakes every waiter of the batch. Under load many concurrent requests share one commit; a lone
caller pays one small transaction.

Batching. The writer blocks for the first row, then takes whatever else is already queued (this
alone is the group commit: rows that arrive while a commit runs form the next batch). If that found
company (more than one row: there is concurrent load) and the batch is not full, it holds the batch
open for stragglers while they keep coming (each next row awaited at most ``_ARRIVAL_GAP_S``), up
to ``max_wait_s`` in all. A lone sequential caller is never held back: a batch of one is committed
at once. ``max_wait_s=0`` disables the linger; with SQLite's cheap WAL commits that is the faster
setting (the linger buys fewer transactions only where commits are expensive).

Failures. A caller never loses a record silently: either ``record`` returns (committed) or it
raises. If the batch insert fails with an ``IntegrityError`` (a tenant reusing one of its own
request ids: the key is (tenant_id, request_id), so other tenants' ids never collide), the
writer retries the batch's rows one by one, each in its own transaction, so only the bad rows'
callers get the error and every other row of the batch is committed. Any other database error
(database locked, disk full, connection lost) fails the whole batch: every waiter of the batch gets
the exception. Bad input (unknown field, missing required field, features/outputs that are not
JSON-serialisable) raises in the caller before anything is queued.

Durability. SQLite (the default) runs in WAL mode with ``synchronous=NORMAL`` (set by
``resources.infra.state_db``): a commit has written its frames to the WAL file (via ``write()``, into the
OS page cache) before it returns, but the WAL is fsynced only at checkpoints. A committed
transaction therefore survives the death of the process, SIGKILL included, because the kernel
still holds the written pages; it may be lost on a power loss or an OS crash (the database stays
consistent: the last transactions are rolled back). That is the property this log needs: a record
acknowledged to a client survives a crash of the API process. Power-loss durability would take
``synchronous=FULL`` (an fsync per commit, which group commit amortises). On PostgreSQL a commit is
durable (``synchronous_commit=on`` by default).

Size. The features and outputs kept per record are capped (``max_payload_bytes``, from
``settings.prediction_log_max_payload_bytes``): above it the larger of them is replaced by
``{"truncated": true, "bytes": N, "sha256": ...}``; the record is written either way.

Cancellation. If the awaiting caller is cancelled (a client went away), its row is still written;
only the wait is abandoned.

No side effects at import; the writer thread starts on ``start()`` (or on the first record).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import logging
import queue
import threading
import time
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from resources.infra.queues import drain
from resources.infra.state_db import StateStore, UTCDateTime, metadata, utcnow

log = logging.getLogger("mlservice.prediction_log")

prediction_log = sa.Table(
    "prediction_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(128), nullable=False),  # unique per tenant, suffixed on a reuse
    sa.Column("client_request_id", sa.String(128), nullable=True),  # the X-Request-ID as the request carried it
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("subject", sa.String(256), nullable=True),  # the token's sub (answered predictions are not audited twice)
    sa.Column("model_id", sa.String(64), nullable=False),
    sa.Column("model_version", sa.String(64), nullable=False),
    sa.Column("ensemble_id", sa.String(64), nullable=True),
    sa.Column("at", UTCDateTime(), nullable=False),  # a naive value is taken as UTC
    sa.Column("latency_ms", sa.Float, nullable=True),
    sa.Column("features", sa.Text, nullable=True),
    sa.Column("outputs", sa.Text, nullable=True),
    sa.Column("status_code", sa.Integer, nullable=False, default=200, server_default=sa.text("200")),
    sa.Index("ix_prediction_log_tenant_model_time", "tenant_id", "model_id", "at"),
    # Monitoring finds the ensemble records a member answered in (mlservice/monitoring/traffic_window.py) without
    # scanning the tenant's other records.
    sa.Index("ix_prediction_log_tenant_ensemble_time", "tenant_id", "ensemble_id", "at"),
    # Keyed per tenant: another tenant's use of an id is invisible and never conflicts. Databases
    # created when request_id was unique alone are migrated (resources/infra/migrations, the baseline).
    sa.UniqueConstraint("tenant_id", "request_id", name="uq_prediction_log_tenant_request"),
)

_REQUIRED = ("request_id", "tenant_id", "model_id", "model_version")
_OPTIONAL = ("client_request_id", "subject", "ensemble_id", "at", "latency_ms", "features", "outputs", "status_code")
_FIELDS = frozenset(_REQUIRED + _OPTIONAL)
_JSON_FIELDS = ("features", "outputs")
DEFAULT_MAX_PAYLOAD_BYTES = 65_536  # settings.prediction_log_max_payload_bytes
_STOP = object()
# While lingering, the writer waits at most this long for the next row before committing.
_ARRIVAL_GAP_S = 0.0002


def answered(tenant_id: str, start: datetime, end: datetime | None = None, *, model_id: str | None = None,
             version: str | None = None) -> list[sa.ColumnElement[bool]]:
    """The one condition for "the tenant's answered predictions in [start, end)" (status 200;
    optionally under one model id and of one version), as monitoring's window, performance report
    and ground-truth join read them."""
    t = prediction_log
    condition = [t.c.tenant_id == tenant_id, t.c.at >= start, t.c.status_code == 200]
    if end is not None:
        condition.append(t.c.at < end)
    if model_id is not None:
        condition.append(t.c.model_id == model_id)
    if version is not None:
        condition.append(t.c.model_version == version)
    return condition


class PredictionLogClosed(RuntimeError):
    """``record`` was called after ``close()``."""


class _AsyncWaiter:
    __slots__ = ("future", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop, future: asyncio.Future) -> None:
        self.loop = loop
        self.future = future


def _resolve_async(results: list[tuple[asyncio.Future, BaseException | None]]) -> None:
    """Runs on the waiters' event loop: wakes every waiter of a batch in one loop callback."""
    for future, error in results:
        if future.done():  # the caller was cancelled; the row is written regardless
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


class PredictionLog:
    """Durable prediction records with group commit. See the module docstring."""

    def __init__(
        self, state: StateStore, *, max_batch: int = 512, max_wait_s: float = 0.002,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.state = state
        self.max_payload_bytes = max_payload_bytes
        self.max_batch = max_batch
        self.max_wait_s = max(0.0, max_wait_s)
        self._queue: queue.Queue[Any] = queue.Queue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        # Counters, updated by the writer thread only (read them for metrics and tests).
        self.transactions = 0  # committed batch transactions plus row-by-row retry transactions
        self.batches = 0
        self.records_written = 0
        self.records_failed = 0

    # -- lifecycle --
    def start(self) -> None:
        """Start the writer thread (again, after ``close``: an app's lifespan may run more than
        once). Also opens the engine (creating missing tables), so the first record does not pay
        for it."""
        _ = self.state.engine
        with self._lock:
            if self._closed and (self._thread is None or not self._thread.is_alive()):
                self._closed, self._thread = False, None  # close() wrote everything queued
            self._start_locked()

    def _start_locked(self) -> None:
        if self._closed:
            raise PredictionLogClosed("the prediction log is closed")
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="prediction-log-writer", daemon=True)
            self._thread.start()

    def close(self, timeout: float | None = 30.0) -> None:
        """Commit everything queued, wake its waiters, then stop the writer. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
            if thread is not None:
                self._queue.put(_STOP)
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                log.error("prediction-log writer did not stop within %ss; records may be pending", timeout)
                return
        self._drain_after_stop()

    # -- writing --
    async def record(self, **fields: Any) -> None:
        """Queue one prediction record and return once it is committed (raise if it is not)."""
        row = self._row(fields)
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._enqueue(row, _AsyncWaiter(loop, future))
        await future

    def record_sync(self, **fields: Any) -> None:
        """``record`` for non-async callers: blocks until the record is committed. Not for use
        on an event loop thread (it would block the loop)."""
        row = self._row(fields)
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._enqueue(row, future)
        future.result()

    def _enqueue(self, row: dict[str, Any], waiter: Any) -> None:
        with self._lock:
            self._start_locked()  # raises once closed, so nothing is queued behind the stop mark
            self._queue.put((row, waiter))

    def _row(self, fields: dict[str, Any]) -> dict[str, Any]:
        unknown = set(fields) - _FIELDS
        if unknown:
            raise TypeError(f"unknown prediction log fields: {sorted(unknown)}")
        missing = [name for name in _REQUIRED if fields.get(name) is None]
        if missing:
            raise TypeError(f"missing prediction log fields: {missing}")
        row = {name: fields.get(name) for name in _REQUIRED + _OPTIONAL}
        row["request_id"] = str(row["request_id"])
        if row["at"] is None:
            row["at"] = utcnow()
        elif not isinstance(row["at"], datetime):
            raise TypeError("at must be a datetime")
        if row["status_code"] is None:
            row["status_code"] = 200
        for name in _JSON_FIELDS:
            if row[name] is not None:
                row[name] = json.dumps(row[name], separators=(",", ":"), default=_json_default)
        _cap_payload(row, self.max_payload_bytes)
        return row

    # -- the writer thread --
    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            batch = [item]
            stop = self._fill(batch)
            self._commit(batch)
            if stop:
                return

    def _fill(self, batch: list[Any]) -> bool:
        """Add queued rows to ``batch``; True if the stop mark was taken."""
        deadline: float | None = None
        while len(batch) < self.max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                if len(batch) == 1 or self.max_wait_s <= 0:
                    return False  # a lone caller is not held back
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self.max_wait_s
                if now >= deadline:
                    return False
                try:  # linger only while rows keep arriving
                    item = self._queue.get(timeout=min(deadline - now, _ARRIVAL_GAP_S))
                except queue.Empty:
                    return False
            if item is _STOP:
                return True
            batch.append(item)
        return False

    def _drain_after_stop(self) -> None:
        """Anything queued behind the stop mark (cannot happen through ``_enqueue``) is written."""
        batch = drain(self._queue, _STOP)
        for start in range(0, len(batch), self.max_batch):
            self._commit(batch[start : start + self.max_batch])

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        """One transaction for ``rows``: committed on return, rolled back on raise."""
        with self.state.begin() as conn:
            conn.execute(prediction_log.insert(), rows)

    def _commit(self, batch: list[tuple[dict[str, Any], Any]]) -> None:
        errors: list[BaseException | None]
        try:
            errors = self._write(batch)
        except BaseException as exc:
            log.exception("prediction-log writer failed on a batch of %d", len(batch))
            errors = [exc] * len(batch)
        self._notify(batch, errors)

    def _write(self, batch: list[tuple[dict[str, Any], Any]]) -> list[BaseException | None]:
        rows = [row for row, _ in batch]
        self.batches += 1
        try:
            self._insert(rows)
        except sa.exc.IntegrityError as exc:
            if len(rows) == 1:
                self.records_failed += 1
                return [exc]
            log.warning("prediction-log batch of %d hit %s; retrying row by row", len(rows), type(exc).__name__)
        except Exception as exc:
            log.error("could not write %d prediction records: %s", len(rows), exc)
            self.records_failed += len(rows)
            return [exc] * len(rows)
        else:
            self.transactions += 1
            self.records_written += len(rows)
            return [None] * len(rows)
        errors: list[BaseException | None] = []
        for row in rows:
            try:
                self._insert([row])
            except Exception as exc:
                self.records_failed += 1
                errors.append(exc)
            else:
                self.transactions += 1
                self.records_written += 1
                errors.append(None)
        return errors

    @staticmethod
    def _notify(batch: list[tuple[dict[str, Any], Any]], errors: list[BaseException | None]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future, BaseException | None]]] = {}
        for (_, waiter), error in zip(batch, errors, strict=True):
            if isinstance(waiter, _AsyncWaiter):
                by_loop.setdefault(waiter.loop, []).append((waiter.future, error))
            elif error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)
        for loop, results in by_loop.items():
            try:
                loop.call_soon_threadsafe(_resolve_async, results)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                pass

    # -- reading --
    def records(self, tenant_id: str, model_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """A tenant's records, newest first, with ``features`` and ``outputs`` decoded."""
        table = prediction_log
        query = (
            sa.select(table)
            .where(table.c.tenant_id == tenant_id)
            .order_by(table.c.at.desc(), table.c.id.desc())
            .limit(limit)
        )
        if model_id is not None:
            query = query.where(table.c.model_id == model_id)
        with self.state.begin() as conn:
            rows = [dict(row) for row in conn.execute(query).mappings()]
        for row in rows:
            for name in _JSON_FIELDS:
                if row[name] is not None:
                    row[name] = json.loads(row[name])
        return rows

    def count(self, tenant_id: str | None = None) -> int:
        query = sa.select(sa.func.count()).select_from(prediction_log)
        if tenant_id is not None:
            query = query.where(prediction_log.c.tenant_id == tenant_id)
        with self.state.begin() as conn:
            return int(conn.execute(query).scalar_one())


def _cap_payload(row: dict[str, Any], limit: int) -> None:
    """Keep features + outputs within ``limit`` bytes: the largest of them is replaced by a marker
    (its size and digest) until they fit. The record itself is always written."""
    sizes = {name: len(row[name]) for name in _JSON_FIELDS if row[name] is not None}  # ASCII JSON
    total = sum(sizes.values())
    for name in sorted(sizes, key=sizes.__getitem__, reverse=True):
        if total <= limit:
            return
        raw = row[name].encode()
        row[name] = json.dumps({"truncated": True, "bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest()})
        total += len(row[name]) - len(raw)


def _json_default(value: Any) -> Any:
    """numpy scalars and arrays, datetimes: what model outputs commonly hold."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
