"""Incremental windows: a model's recent log records kept in memory, so a report reads only what is new.

A drift report over a window that ends now would otherwise read the whole window from the
prediction log on every request (100k records: 0.35-0.6 s of SQL and JSON, most of a report's
time). ``WindowCache`` keeps, per (tenant, model, version, features), the records read so far in
(at, id) order. Each request re-reads only the records at or after the previous read's time minus
``lag_s`` and lets that read replace the cached records of the same span: a record's ``at`` is
taken when the request arrives and it is committed a little later, so a record may become visible
after a newer one; the overlap catches it, and no id is held twice because the re-read span is
replaced, not merged.

What is cached, and for how long:
- windows that end now (``end >= now - lag_s``); a window that ended earlier is read whole
  (``mlservice.monitoring.traffic_window.current_sample``): it is not what a dashboard polls;
- an entry covers ``[since, ...)`` where ``since`` is the earliest window start asked of it; a
  request starting earlier refills it from that start;
- every ``max_age_s`` an entry is read whole again, so that records deleted by retention, or
  committed more than ``lag_s`` after their ``at``, are reflected within that time.

Bounds: an entry holds at most ``max_rows`` rows, the newest (older ones are dropped and the entry
remembers up to when: a window reaching that far back is answered as ``sampled`` if it still holds
``max_rows`` rows, else read whole); all entries together hold at most ``max_cells`` values (rows x
features) and ``max_entries`` entries, least recently used evicted first. Each entry has its own
lock: concurrent reports of one model wait for one read instead of each doing it.

Several API workers each keep their own cache, reading the one shared log.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from mlservice.monitoring.traffic_window import MAX_WINDOW_ROWS, CurrentSample, Records, current_sample, epoch_us, read_records, sample_of
from resources.infra.state_db import StateStore

MAX_CELLS = 2_000_000  # e.g. 5 models x 100k rows x 4 features; ~30 bytes a value as Python objects
MAX_ENTRIES = 64
MAX_AGE_S = 300.0
LAG_S = 60.0

Key = tuple[str, str, str, tuple[str, ...]]


@dataclass
class _Entry:
    lock: threading.Lock = field(default_factory=threading.Lock)
    records: Records | None = None
    since: datetime | None = None  # the earliest window start this entry holds
    read_at: datetime | None = None  # when the newest read began
    loaded: float = 0.0  # monotonic time of the last whole read
    cells: int = 0


class WindowCache:
    def __init__(self, state: StateStore, *, max_rows: int = MAX_WINDOW_ROWS, max_cells: int = MAX_CELLS,
                 max_entries: int = MAX_ENTRIES, max_age_s: float = MAX_AGE_S, lag_s: float = LAG_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.state = state
        self.max_rows = max_rows
        self.max_cells = max_cells
        self.max_entries = max_entries
        self.max_age_s = max_age_s
        self.lag = timedelta(seconds=lag_s)
        self.clock = clock
        self._entries: OrderedDict[Key, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.whole_reads = 0  # counters, for tests and the benchmark
        self.incremental_reads = 0

    def sample(self, tenant_id: str, model_id: str, features: Sequence[str], start: datetime, end: datetime, *,
               version: str, now: datetime) -> CurrentSample:
        """The window's rows, as ``current_sample`` reads them (blocking: off the event loop)."""
        if end < now - self.lag:
            return current_sample(self.state, tenant_id, model_id, list(features), start, end, version=version,
                                  max_rows=self.max_rows)
        key = (tenant_id, model_id, version, tuple(features))
        entry = self._entry(key)
        with entry.lock:
            if (entry.records is None or entry.since is None or start < entry.since
                    or self.clock() - entry.loaded > self.max_age_s):
                self._read_whole(entry, key, start, now)
            else:
                self._read_new(entry, key, now)
            records = entry.records
            assert records is not None
            answer = self._window(records, start, end)
            entry.cells = records.row_count * len(features)
        self._bound(key)
        if answer is None:  # the window reaches back past what the entry dropped, and holds fewer rows than the cap
            return current_sample(self.state, tenant_id, model_id, list(features), start, end, version=version,
                                  max_rows=self.max_rows)
        return answer

    def _entry(self, key: Key) -> _Entry:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry()
            self._entries.move_to_end(key)
            return entry

    def _read_whole(self, entry: _Entry, key: Key, start: datetime, now: datetime) -> None:
        since = start if entry.since is None else min(start, entry.since)
        tenant_id, model_id, version, features = key
        entry.records = read_records(self.state, tenant_id, model_id, features, since, version=version,
                                     max_rows=self.max_rows)
        entry.since, entry.read_at, entry.loaded = since, now, self.clock()
        self.whole_reads += 1

    def _read_new(self, entry: _Entry, key: Key, now: datetime) -> None:
        """Re-read from the previous read's time minus the lag; that read replaces the cached span."""
        import numpy as np

        assert entry.records is not None and entry.since is not None and entry.read_at is not None
        since = max(entry.since, entry.read_at - self.lag)
        tenant_id, model_id, version, features = key
        fresh = read_records(self.state, tenant_id, model_id, features, since, version=version, max_rows=self.max_rows)
        if fresh.dropped_upto_us is not None:  # more than max_rows rows since: the fresh read is all that is kept
            older = entry.records
            fresh.dropped_upto_us = max(fresh.dropped_upto_us, int(older.at_us[-1]) if len(older.at_us) else 0)
            entry.records = fresh
        else:
            cut = int(np.searchsorted(entry.records.at_us, epoch_us(since), side="left"))
            entry.records = entry.records.between(0, cut).then(fresh).newest(self.max_rows)
        entry.read_at = now
        self.incremental_reads += 1

    def _window(self, records: Records, start: datetime, end: datetime) -> CurrentSample | None:
        import numpy as np

        first = int(np.searchsorted(records.at_us, epoch_us(start), side="left"))
        stop = int(np.searchsorted(records.at_us, epoch_us(end), side="left"))
        dropped = records.dropped_upto_us
        if dropped is not None and epoch_us(start) <= dropped:
            if int(records.rows[first:stop].sum()) < self.max_rows:
                return None
            return sample_of(records, start, end, first, stop, sampled=True, max_rows=self.max_rows)
        return sample_of(records, start, end, first, stop, sampled=False, max_rows=self.max_rows)

    def _bound(self, keep: Key) -> None:
        """Evict the least recently used entries (never ``keep``) beyond the cell and entry bounds."""
        with self._lock:
            total = sum(e.cells for e in self._entries.values())
            for key in list(self._entries):
                if total <= self.max_cells and len(self._entries) <= self.max_entries:
                    return
                if key != keep:
                    total -= self._entries.pop(key).cells
