"""The current sample: the features a model was asked to score in a window, from the prediction log.

Every serving path records its input rows in one format (``serving_api/predictions/outcome``):
rows, predictions by entity (the online store's values that were used), OIP tensors, and ensembles
(one record under the ensemble's id whose ``outputs.members`` names each member, its version and
whether it answered). A model's window is its own records plus the records of ensembles in which it
answered, answered with status 200, ``start <= at < end``, optionally of one version.

Costs are bounded: a window spans at most ``MAX_WINDOW_HOURS``, and at most ``max_rows`` input rows
are read, the newest (the answer says when the window held more: ``sampled``). Records whose
features were truncated at logging (payload cap) carry no rows and are counted as skipped. Rows come
oldest first. ``read_records`` is the one reader: ``current_sample`` uses it for one window, and
``mlservice.monitoring.window_cache`` for the API's windows that end now, read incrementally.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from resources.errors import InvalidRequest
from resources.infra.state_db import StateStore, as_utc

if TYPE_CHECKING:
    import numpy as np

MAX_WINDOW_HOURS = 24 * 31
MAX_WINDOW_ROWS = 200_000  # 100k rows x 4 features read and tested in well under a second (benchmarks/drift.py)
_FETCH = 5_000  # records per round trip


@dataclass
class CurrentSample:
    """Feature columns of a window: name -> values, oldest first; a row that lacked the feature holds
    None (NaN in a numeric column, which is a numpy array)."""

    start: datetime
    end: datetime
    columns: dict[str, Sequence[Any]]  # numeric columns as numpy arrays (NaN where missing), others as lists
    rows: int = 0
    records: int = 0
    sampled: bool = False  # the window held more rows than were read
    skipped_records: int = 0  # truncated at logging: no rows to read
    versions: dict[str, int] = field(default_factory=dict)  # rows per model version


def window_bounds(now: datetime, *, window_hours: float | None = None, start: datetime | None = None,
                  end: datetime | None = None, default_hours: float = 24) -> tuple[datetime, datetime]:
    """[start, end) from either ``window_hours`` (ending now) or ``start``/``end`` (end defaults to
    now); naive times are UTC. 400 for an empty, reversed or too long window, or both forms at once."""
    if window_hours is not None and (start is not None or end is not None):
        raise InvalidRequest("give either window_hours or start/end, not both")
    end_at = as_utc(end) if end is not None else as_utc(now)
    if start is not None:
        start_at = as_utc(start)
    else:
        hours = default_hours if window_hours is None else window_hours
        if not 0 < hours <= MAX_WINDOW_HOURS:
            raise InvalidRequest(f"window_hours must be above 0 and at most {MAX_WINDOW_HOURS}", {"window_hours": hours})
        try:
            start_at = end_at - timedelta(hours=hours)
        except OverflowError:  # an end in year 1: the window would start before any date there is
            raise InvalidRequest("the window reaches before the earliest date", {"end": end_at.isoformat()}) from None
    if start_at >= end_at:
        raise InvalidRequest("the window's start must be before its end", {"start": start_at.isoformat(), "end": end_at.isoformat()})
    if end_at - start_at > timedelta(hours=MAX_WINDOW_HOURS):
        raise InvalidRequest(f"a window spans at most {MAX_WINDOW_HOURS} hours")
    return start_at, end_at


@dataclass
class Records:
    """Log records in (at, id) order, oldest first, with their rows' feature columns concatenated.

    ``at_us`` are microseconds since the epoch (UTC); ``rows[i]`` is record i's row count (0 for a
    record truncated at logging); ``versions[i]`` indexes record i's model version in
    ``version_names``. ``dropped_upto_us``: the reader kept only the newest rows, and records at or
    before this time may be missing (None: nothing was left out)."""

    ids: np.ndarray
    at_us: np.ndarray
    versions: np.ndarray
    version_names: list[str]
    rows: np.ndarray
    columns: dict[str, np.ndarray | list[Any]]
    dropped_upto_us: int | None = None

    @property
    def row_count(self) -> int:
        return int(self.rows.sum())

    def between(self, first: int, stop: int) -> Records:
        """Records[first:stop] (and their rows); ``dropped_upto_us`` is kept only with the oldest."""
        lo = int(self.rows[:first].sum())
        hi = lo + int(self.rows[first:stop].sum())
        return Records(self.ids[first:stop], self.at_us[first:stop], self.versions[first:stop], self.version_names,
                       self.rows[first:stop], {name: values[lo:hi] for name, values in self.columns.items()},
                       self.dropped_upto_us if first == 0 else None)

    def then(self, newer: Records) -> Records:
        """These records followed by ``newer`` (all of them at or after the last of these)."""
        import numpy as np

        names = list(self.version_names)
        recode = np.array([_code(names, name) for name in newer.version_names], dtype=np.int64)
        codes = recode[newer.versions] if len(newer.versions) else newer.versions
        return Records(np.concatenate([self.ids, newer.ids]), np.concatenate([self.at_us, newer.at_us]),
                       np.concatenate([self.versions, codes]), names, np.concatenate([self.rows, newer.rows]),
                       {name: _joined(values, newer.columns[name]) for name, values in self.columns.items()},
                       self.dropped_upto_us)

    def newest(self, max_rows: int) -> Records:
        """The newest records holding ``max_rows`` rows (whole records; the oldest kept may hold more)."""
        import numpy as np

        from_end = np.cumsum(self.rows[::-1])
        keep = min(int(np.searchsorted(from_end, max_rows, side="left")) + 1, len(self.rows))
        first = len(self.rows) - keep
        if first == 0:
            return self
        kept = self.between(first, len(self.rows))
        kept.dropped_upto_us = max(int(self.at_us[first - 1]), self.dropped_upto_us or 0)
        return kept


def epoch_us(moment: datetime) -> int:
    """Microseconds since the epoch of an aware (or naive UTC) datetime, exactly."""
    delta = as_utc(moment) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def read_records(state: StateStore, tenant_id: str, model_id: str, features: Sequence[str], since: datetime,
                 until: datetime | None = None, *, version: str | None = None, max_rows: int = MAX_WINDOW_ROWS) -> Records:
    """The model's records (its own and the ensembles' in which it answered) with ``since <= at``
    (and ``at < until``), status 200, optionally of one version: at most ``max_rows`` rows, the
    newest (blocking: off the event loop).

    The model's own records come from one query of just (id, at, version, features), parsed as one
    JSON document with the cyclic garbage collector paused meanwhile (100k rows of small dicts
    would set off full collections that cost more than the read: measured 0.44 vs 0.63 s); ``at``
    is read as the database holds it and converted by numpy. Ensemble records naming the model
    follow, streamed, their ``outputs`` parsed to find the member's version."""
    import sqlalchemy as sa

    from resources.predictions.log import answered
    from resources.predictions.log import prediction_log as t

    window = answered(tenant_id, since, until)
    own = answered(tenant_id, since, until, model_id=model_id, version=version or None)
    at_raw = sa.type_coerce(t.c.at, sa.String)  # SQLite's text, parsed by numpy below (the column type parses in Python)
    newest_first = (t.c.at.desc(), t.c.id.desc())
    parts: list[tuple[list[Any], list[Any], list[str], list[str | None]]] = []
    with state.engine.connect() as conn, _collector_paused():
        found = conn.execute(sa.select(t.c.id, at_raw, t.c.model_version, t.c.features).where(*own)
                             .order_by(*newest_first).limit(max_rows + 1)).all()  # a record holds at least one row
        parts.append(([r[0] for r in found], [r[1] for r in found], [r[2] for r in found], [r[3] for r in found]))
        parts.append(_ensemble_records(conn, window, model_id, version, max_rows, at_raw))
        # More own records than rows allowed, or the ensemble stream stopped early: the cap below
        # then drops the oldest record read, so dropped_upto_us covers every record not read.
        return _assemble(parts, features, max_rows)


def current_sample(state: StateStore, tenant_id: str, model_id: str, features: list[str], start: datetime, end: datetime,
                   *, version: str | None = None, max_rows: int = MAX_WINDOW_ROWS) -> CurrentSample:
    """The window's input rows of ``features`` for the model, read whole (blocking: off the event loop)."""
    records = read_records(state, tenant_id, model_id, features, start, end, version=version, max_rows=max_rows)
    return sample_of(records, start, end, 0, len(records.ids), sampled=records.dropped_upto_us is not None,
                     max_rows=max_rows)


def sample_of(records: Records, start: datetime, end: datetime, first: int, stop: int, *, sampled: bool,
              max_rows: int) -> CurrentSample:
    """The CurrentSample of records[first:stop]: their rows, the newest ``max_rows`` of them."""
    import numpy as np

    counts = records.rows[first:stop]
    offsets = int(records.rows[:first].sum())
    total = int(counts.sum())
    keep = min(total, max_rows)
    lo, hi = offsets + total - keep, offsets + total
    sample = CurrentSample(start, end, {name: values[lo:hi] for name, values in records.columns.items()}, rows=keep)
    sample.sampled = sampled or total > max_rows
    # Records whose rows were (all or partly) kept, and the rows per version among them.
    ends = np.cumsum(counts)
    kept_from = int(np.searchsorted(ends, total - keep, side="right")) if keep < total else 0
    sample.records = (stop - first) - kept_from
    sample.skipped_records = int((counts[kept_from:] == 0).sum())
    weights = counts[kept_from:].astype(np.int64)
    if keep < total and len(weights):  # the oldest kept record lost some of its rows to the cap
        weights[0] -= total - keep - (int(ends[kept_from - 1]) if kept_from else 0)
    per_version = np.bincount(records.versions[first + kept_from:stop], weights=weights,
                              minlength=len(records.version_names))
    sample.versions = {records.version_names[i]: int(n) for i, n in enumerate(per_version.tolist()) if n}
    return sample


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@contextmanager
def _collector_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _ensemble_records(conn: Any, window: list[Any], model_id: str, version: str | None, max_rows: int,
                      at_raw: Any) -> tuple[list[Any], list[Any], list[str], list[str | None]]:
    """The ensemble records in which the model (that version) answered, newest first, streamed
    until they hold ``max_rows`` rows at the least (a record holds at least one row)."""
    import orjson
    import sqlalchemy as sa

    from resources.predictions.log import prediction_log as t

    # An ensemble's record names its members in outputs; the LIKE narrows, parsing decides.
    pattern = "%" + model_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    query = (sa.select(t.c.id, at_raw, t.c.features, t.c.outputs)
             .where(*window, t.c.ensemble_id.is_not(None), t.c.outputs.like(pattern, escape="\\"))
             .order_by(t.c.at.desc(), t.c.id.desc()))
    ids: list[Any] = []
    ats: list[Any] = []
    versions: list[str] = []
    texts: list[str | None] = []
    result = conn.execution_options(stream_results=True).execute(query)
    try:
        while len(ids) <= max_rows:
            batch = result.fetchmany(_FETCH)
            if not batch:
                break
            for record_id, at, raw_features, raw_outputs in batch:
                answered = _member_versions(orjson.loads(raw_outputs or b"{}"), model_id)
                answered = [v for v in answered if v == version] if version else answered
                if answered:  # two versions of one model in an ensemble: its rows count once
                    ids.append(record_id)
                    ats.append(at)
                    versions.append(answered[0])
                    texts.append(raw_features)
    finally:
        result.close()
    return ids, ats, versions, texts


def _epoch_us_array(values: list[Any]) -> np.ndarray:
    """``at`` values as the database returned them (SQLite: UTC wall-clock text; others: datetimes)."""
    import numpy as np

    if values and not isinstance(values[0], str):
        values = [as_utc(v).replace(tzinfo=None) for v in values]
    return np.array(values, dtype="datetime64[us]").astype(np.int64)


def _assemble(parts: list[tuple[list[Any], list[Any], list[str], list[str | None]]], features: Sequence[str],
              max_rows: int) -> Records:
    """One Records of the parts (each newest first): parsed, in (at, id) order, cut to the newest
    ``max_rows`` rows by whole records. (Rows of records the cap drops are parsed too: at most
    one fetch beyond the cap, since each query stops at ``max_rows`` records.)"""
    import numpy as np
    import orjson

    ids = np.array([i for part in parts for i in part[0]], dtype=np.int64)
    at_us = _epoch_us_array([a for part in parts for a in part[1]])
    index: dict[str, int] = {}
    versions = np.array([index.setdefault(v, len(index)) for part in parts for v in part[2]], dtype=np.int64)
    names = list(index)
    texts = [x for part in parts for x in part[3]]
    order = np.lexsort((ids, at_us))  # oldest first
    parsed = orjson.loads("[" + ",".join(texts[i] or "null" for i in order.tolist()) + "]")
    counts = np.array([len(r) if isinstance(r, list) else 0 for r in parsed], dtype=np.int64)
    rows = [row for record in parsed if isinstance(record, list) for row in record]
    columns = {name: _column([row.get(name) if isinstance(row, dict) else None for row in rows]) for name in features}
    return Records(ids[order], at_us[order], versions[order], names, counts, columns).newest(max_rows)


def _column(values: list[Any]) -> np.ndarray | list[Any]:
    """A column of numbers (None for a missing one) as a float or int numpy array, NaN for None; any
    other column (strings, booleans, mixed) as the list of its values. Numbers are what the
    statistics read, and an array is sliced without a copy and converted once, when read."""
    import numpy as np

    try:
        array = np.asarray(values)
    except (ValueError, TypeError):  # nested values of unequal shapes: not a column of numbers
        return values
    if array.ndim != 1:  # nested values (lists): not numbers either
        return values
    if array.dtype.kind in "iuf":
        return array
    if array.dtype.kind == "O" and set(map(type, values)) <= {int, float, type(None)}:
        return np.array(values, dtype=float)
    return values


def _joined(older: np.ndarray | list[Any], newer: np.ndarray | list[Any]) -> np.ndarray | list[Any]:
    import numpy as np

    if isinstance(older, np.ndarray) and isinstance(newer, np.ndarray):
        return np.concatenate([older, newer])
    return _column(list(older.tolist() if isinstance(older, np.ndarray) else older)
                   + list(newer.tolist() if isinstance(newer, np.ndarray) else newer))


def _code(names: list[str], name: str) -> int:
    """The index of ``name`` in ``names``, appended if new."""
    if name not in names:
        names.append(name)
    return names.index(name)


def _member_versions(outputs: Any, model_id: str) -> list[str]:
    """The versions of ``model_id`` that answered in this ensemble record."""
    members = outputs.get("members") if isinstance(outputs, dict) else None
    return [str(m.get("version")) for m in members or []
            if isinstance(m, dict) and m.get("model_id") == model_id and m.get("status") == "ok"]
