"""The current sample read from the prediction log: oldest first, the newest rows up to the cap (and
``sampled`` said), records of several rows, truncated records skipped and counted, the window's
bounds, other tenants, models and versions left out, refused records left out."""

from __future__ import annotations

import json
from datetime import timedelta

import sqlalchemy as sa

from mlservice.monitoring.traffic_window import current_sample
from resources.infra.state_db import utcnow
from resources.predictions.log import prediction_log
from tests.utils.columns import listed

NOW = utcnow()


def _log(state, rows):
    with state.begin() as conn:
        conn.execute(sa.insert(prediction_log), [
            dict(request_id=f"r{i}", tenant_id=r.get("tenant", "t"), model_id=r.get("model", "m"), model_version=r.get("version", "1.0.0"),
                 at=NOW - timedelta(minutes=r.get("minutes_ago", i + 1)), status_code=r.get("status", 200),
                 features=r["features"] if isinstance(r["features"], str) else json.dumps(r["features"]),
                 outputs=json.dumps({"prediction": [0]}))
            for i, r in enumerate(rows)
        ])


def test_rows_records_caps_and_filters(state):
    _log(state, [
        {"features": [{"x": 1.0}]},                            # newest
        {"features": [{"x": 2.0}, {"x": 3.0}, {"x": 4.0}]},    # one record, three rows
        {"features": '{"truncated": true, "bytes": 99999}'},   # the payload cap replaced its rows
        {"features": [{"x": 5.0}], "version": "2.0.0"},
        {"features": [{"x": 6.0}], "tenant": "other"},
        {"features": [{"x": 7.0}], "model": "other"},
        {"features": [{"x": 8.0}], "status": 422},
        {"features": [{"y": 9.0}]},                            # lacks x: None
        {"features": [{"x": 10.0}], "minutes_ago": 600},      # before the window
    ])
    start, end = NOW - timedelta(hours=1), NOW + timedelta(seconds=1)
    sample = current_sample(state, "t", "m", ["x"], start, end)
    assert listed(sample.columns["x"]) == [None, 5.0, 2.0, 3.0, 4.0, 1.0]  # oldest first
    assert (sample.rows, sample.records, sample.skipped_records, sample.sampled) == (6, 5, 1, False)
    assert sample.versions == {"1.0.0": 5, "2.0.0": 1}
    pinned = current_sample(state, "t", "m", ["x"], start, end, version="2.0.0")
    assert listed(pinned.columns["x"]) == [5.0] and pinned.versions == {"2.0.0": 1}
    capped = current_sample(state, "t", "m", ["x"], start, end, max_rows=3)
    assert listed(capped.columns["x"]) == [3.0, 4.0, 1.0] and capped.rows == 3 and capped.sampled is True
    assert capped.records == 2 and capped.versions == {"1.0.0": 3}  # the three-row record partly kept


def test_window_bounds_refuse_what_cannot_be_a_window():
    import pytest

    from mlservice.monitoring.traffic_window import window_bounds
    from resources.errors import InvalidRequest

    earliest = NOW.replace(year=1, month=1, day=1, hour=1)
    with pytest.raises(InvalidRequest, match="earliest date"):
        window_bounds(NOW, end=earliest)  # 24 hours before 0001-01-01T01:00 is no date
    with pytest.raises(InvalidRequest):
        window_bounds(NOW, window_hours=0)
    with pytest.raises(InvalidRequest):
        window_bounds(NOW, start=NOW, end=NOW)
    start, end = window_bounds(NOW, window_hours=2)
    assert end == NOW and end - start == timedelta(hours=2)


def test_columns_of_numbers_are_arrays_and_anything_else_stays_as_logged(state):
    import numpy as np

    _log(state, [
        {"features": [{"n": 1, "f": 1.5, "s": "a", "b": True, "mixed": 1, "nested": [1, 2]}]},
        {"features": [{"n": 2, "f": None, "s": None, "b": False, "mixed": "x", "nested": [3]}]},
    ])
    start, end = NOW - timedelta(hours=1), NOW + timedelta(seconds=1)
    columns = current_sample(state, "t", "m", ["n", "f", "s", "b", "mixed", "nested"], start, end).columns
    assert columns["n"].dtype == np.int64 and columns["n"].tolist() == [2, 1]
    assert columns["f"].dtype == np.float64 and listed(columns["f"]) == [None, 1.5]
    assert columns["s"] == [None, "a"] and columns["b"] == [False, True]
    assert columns["mixed"] == ["x", 1] and columns["nested"] == [[3], [1, 2]]
