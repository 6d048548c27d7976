"""The audit log: one record for every write and every refused call of the API.

Records are queued by the request path and written in groups by one background thread, so the
audit costs the hot path a queue append. ``close()`` flushes what is queued.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any

import sqlalchemy as sa

from resources.queues import drain
from resources.state_db import StateStore, audit_log, utcnow

log = logging.getLogger("mlservice.audit")
_STOP = object()


class AuditLog:
    def __init__(self, state: StateStore, *, batch_size: int = 256, flush_interval_s: float = 0.2) -> None:
        self.state = state
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self._queue: "queue.Queue[Any]" = queue.Queue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
            self._thread.start()

    def record(self, **fields: Any) -> None:
        fields.setdefault("at", utcnow())
        self._queue.put(fields)
        if self._thread is None:
            self.flush()

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout=10)
            self._thread = None
        self.flush()

    def flush(self) -> None:
        self._write(drain(self._queue, _STOP))

    def _write(self, batch: list[dict[str, Any]]) -> None:
        if not batch:
            return
        try:
            with self.state.begin() as conn:
                conn.execute(audit_log.insert(), batch)
        except Exception:  # noqa: BLE001 - the writer must outlive a database hiccup
            log.exception("could not write %d audit records", len(batch))

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=self.flush_interval_s)
            except queue.Empty:
                continue
            if first is _STOP:
                return
            batch = [first]
            stop = False
            while len(batch) < self.batch_size:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
            self._write(batch)
            if stop:
                return

    def records(self, tenant_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        query = sa.select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
        if tenant_id is not None:
            query = query.where(audit_log.c.tenant_id == tenant_id)
        with self.state.begin() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]
