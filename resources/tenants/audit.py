"""The audit log: one record for every write and every refused call of the API.

Records are queued by the request path and written in groups by one background thread, so the
audit costs the hot path a queue append. ``close()`` flushes what is queued.

Every string is cut to its column's size (and NUL characters, which PostgreSQL refuses in text,
are replaced) before it is queued, so a long path or subject cannot fail a batch. A batch that
fails anyway because of its rows (integrity, data) is retried row by row: only the rows that fail
on their own are lost (and logged), never the other tenants' records that shared the batch. A
database that is down or locked loses the batch (logged), as before.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any

import sqlalchemy as sa

from resources.infra.queues import drain
from resources.infra.state_db import StateStore, UTCDateTime, metadata, utcnow

log = logging.getLogger("mlservice.audit")

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("request_id", sa.String(128), nullable=False),
    sa.Column("tenant_id", sa.String(64), nullable=True),
    sa.Column("subject", sa.String(256), nullable=True),
    sa.Column("method", sa.String(16), nullable=False),
    sa.Column("path", sa.String(2048), nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("error_code", sa.String(64), nullable=True),
    sa.Column("model_id", sa.String(64), nullable=True),  # the model a call addressed, if any (monitoring's per-model view)
    sa.Index("ix_audit_log_tenant_time", "tenant_id", "at"),
    sa.Index("ix_audit_log_tenant_model_time", "tenant_id", "model_id", "at"),
)
_STOP = object()
_LENGTHS = {c.name: c.type.length for c in audit_log.columns if isinstance(c.type, sa.String) and c.type.length}


def fit_columns(fields: dict[str, Any]) -> dict[str, Any]:
    """The record with every string cut to its column's length, NUL characters replaced."""
    for name, length in _LENGTHS.items():
        value = fields.get(name)
        if isinstance(value, str):
            fields[name] = value[:length].replace("\x00", "\ufffd")
    return fields


class AuditLog:
    def __init__(self, state: StateStore, *, batch_size: int = 256, flush_interval_s: float = 0.2) -> None:
        self.state = state
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.records_failed = 0  # rows that could not be written even alone (updated by the writer)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
            self._thread.start()

    def record(self, **fields: Any) -> None:
        fields.setdefault("at", utcnow())
        self._queue.put(fit_columns(fields))
        if self._thread is None:
            self.flush()

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout=10)
            self._thread = None
        self.flush()

    def flush(self) -> None:
        self.write(drain(self._queue, _STOP))

    def write(self, batch: list[dict[str, Any]]) -> None:
        """Insert ``batch`` in one transaction; if that fails, each row in its own."""
        if not batch:
            return
        try:
            self._insert(batch)
            return
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:  # the database, not a row: no retry per row
            self.records_failed += len(batch)
            log.error("could not write %d audit records: %s", len(batch), exc)
            return
        except Exception as exc:
            if len(batch) == 1:
                self.records_failed += 1
                log.error("could not write an audit record: %s", exc)
                return
            log.warning("audit batch of %d failed (%s); writing row by row", len(batch), type(exc).__name__)
        for row in batch:
            try:
                self._insert([row])
            except Exception as exc:
                self.records_failed += 1
                log.error("could not write an audit record (request %s): %s", row.get("request_id"), exc)

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        with self.state.begin() as conn:
            conn.execute(audit_log.insert(), rows)

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
            self.write(batch)
            if stop:
                return

    def records(self, tenant_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        query = sa.select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
        if tenant_id is not None:
            query = query.where(audit_log.c.tenant_id == tenant_id)
        with self.state.begin() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]
