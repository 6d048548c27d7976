"""The current sample: the features a model was asked to score in a window, from the prediction log.

Every serving path records its input rows in one format (``serving_api/services/prediction_record``):
rows, predictions by entity (the online store's values that were used), OIP tensors, and ensembles
(one record under the ensemble's id whose ``outputs.members`` names each member, its version and
whether it answered). A model's window is its own records plus the records of ensembles in which it
answered, answered with status 200, ``start <= at < end``, optionally of one version.

Costs are bounded: a window spans at most ``MAX_WINDOW_HOURS``, and at most ``max_rows`` input rows
are read, the newest first (the answer says when the window held more: ``sampled``). Records whose
features were truncated at logging (payload cap) carry no rows and are counted as skipped.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from resources.errors import InvalidRequest
from resources.state_db import StateStore, as_utc

MAX_WINDOW_HOURS = 24 * 31
MAX_WINDOW_ROWS = 200_000  # 100k rows x 4 features read and tested in well under a second (benchmarks/drift.py)
_FETCH = 5_000  # records per round trip


@dataclass
class CurrentSample:
    """Feature columns (name -> values, None where a row lacked the feature) of a window."""

    start: datetime
    end: datetime
    columns: dict[str, list[Any]]
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


def current_sample(state: StateStore, tenant_id: str, model_id: str, features: list[str], start: datetime, end: datetime,
                   *, version: str | None = None, max_rows: int = MAX_WINDOW_ROWS) -> CurrentSample:
    """Read the window's input rows of ``features`` for the model (blocking: off the event loop).

    The model's own records are read in one query of just (version, features) and parsed as one
    JSON document, with the cyclic garbage collector paused meanwhile (100k rows and small dicts
    would set off full collections that cost more than the read: measured 0.44 vs 0.63 s); ensemble records
    naming the model follow, streamed, their ``outputs`` parsed to find the member's version."""
    import sqlalchemy as sa

    from resources.prediction_log import prediction_log as t

    sample = CurrentSample(start, end, {name: [] for name in features})
    window = sa.and_(t.c.tenant_id == tenant_id, t.c.at >= start, t.c.at < end, t.c.status_code == 200)
    own = [t.c.model_id == model_id] + ([t.c.model_version == version] if version else [])
    newest_first = (t.c.at.desc(), t.c.id.desc())
    with state.engine.connect() as conn, _collector_paused():
        records = conn.execute(sa.select(t.c.model_version, t.c.features).where(window, *own).order_by(*newest_first)
                               .limit(max_rows + 1)).all()  # a record holds at least one row
        _add_records(sample, [r[0] for r in records], [r[1] for r in records], features, max_rows)
        if sample.rows < max_rows:
            _add_ensemble_records(sample, conn, window, model_id, version, features, max_rows)
    if len(records) > max_rows:
        sample.sampled = True
    return sample


@contextmanager
def _collector_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _add_records(sample: CurrentSample, versions: list[str], texts: list[str | None], features: list[str], max_rows: int) -> None:
    """Parse the records' features texts (one document) and append their rows to the columns."""
    import orjson

    parsed = orjson.loads("[" + ",".join(text or "null" for text in texts) + "]")
    rows: list[Any] = []
    for served_version, record in zip(versions, parsed, strict=True):
        if sample.rows + len(rows) >= max_rows:
            sample.sampled = True
            break
        sample.records += 1
        if not isinstance(record, list):  # {"truncated": true, ...}: the payload cap replaced the rows
            sample.skipped_records += 1
            continue
        kept = record[: max_rows - sample.rows - len(rows)]
        rows.extend(kept)
        sample.versions[served_version] = sample.versions.get(served_version, 0) + len(kept)
    for name in features:
        sample.columns[name].extend([row.get(name) if isinstance(row, dict) else None for row in rows])
    sample.rows += len(rows)


def _add_ensemble_records(sample: CurrentSample, conn: Any, window: Any, model_id: str, version: str | None,
                          features: list[str], max_rows: int) -> None:
    import orjson
    import sqlalchemy as sa

    from resources.prediction_log import prediction_log as t

    # An ensemble's record names its members in outputs; the LIKE narrows, parsing decides.
    pattern = "%" + model_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    query = (sa.select(t.c.features, t.c.outputs)
             .where(window, t.c.ensemble_id.is_not(None), t.c.outputs.like(pattern, escape="\\"))
             .order_by(t.c.at.desc(), t.c.id.desc()))
    result = conn.execution_options(stream_results=True).execute(query)
    try:
        while sample.rows < max_rows:
            batch = result.fetchmany(_FETCH)
            if not batch:
                return
            versions, texts = [], []
            for raw_features, raw_outputs in batch:
                answered = _member_versions(orjson.loads(raw_outputs or b"{}"), model_id)
                answered = [v for v in answered if v == version] if version else answered
                if answered:  # two versions of one model in an ensemble: its rows count once
                    versions.append(answered[0])
                    texts.append(raw_features)
            _add_records(sample, versions, texts, features, max_rows)
        sample.sampled = True
    finally:
        result.close()


def _member_versions(outputs: Any, model_id: str) -> list[str]:
    """The versions of ``model_id`` that answered in this ensemble record."""
    members = outputs.get("members") if isinstance(outputs, dict) else None
    return [str(m.get("version")) for m in members or []
            if isinstance(m, dict) and m.get("model_id") == model_id and m.get("status") == "ok"]
