"""Incremental windows (mlservice.monitoring.window_cache): every answer equals a whole read of the same
window (current_sample), while only the first request of a model reads the whole window; records
that become visible late (inside the lag), records of ensembles, the row cap and the memory bounds."""

from __future__ import annotations

import json
import random
from datetime import timedelta

import sqlalchemy as sa

from mlservice.monitoring.traffic_window import current_sample
from mlservice.monitoring.window_cache import WindowCache
from resources.infra.state_db import utcnow
from resources.predictions.log import prediction_log
from tests.utils.columns import listed

FEATURES = ["x", "c"]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Log:
    """Writes prediction-log records the way the serving paths do (features as rows, ensembles naming members)."""

    def __init__(self, state) -> None:
        self.state = state
        self.n = 0

    def write(self, at, rows, *, version="1.0.0", model="m", tenant="t", status=200, ensemble=False, truncated=False):
        self.n += 1
        features = '{"truncated": true, "bytes": 99999}' if truncated else json.dumps(rows)
        outputs = {"prediction": [0] * len(rows)}
        if ensemble:
            outputs["members"] = [{"model_id": model, "version": version, "status": "ok"},
                                  {"model_id": "other", "version": "3.0.0", "status": "ok"}]
        with self.state.begin() as conn:
            conn.execute(sa.insert(prediction_log), [dict(
                request_id=f"r{self.n}", tenant_id=tenant, model_id="ens" if ensemble else model,
                ensemble_id="ens" if ensemble else None, model_version="e1" if ensemble else version, at=at,
                status_code=status, features=features, outputs=json.dumps(outputs))])


def _same(a, b) -> None:
    assert a.columns.keys() == b.columns.keys()
    for name in a.columns:
        assert listed(a.columns[name]) == listed(b.columns[name]), name
    assert (a.rows, a.records, a.skipped_records, a.sampled, a.versions) == (b.rows, b.records, b.skipped_records,
                                                                                b.sampled, b.versions)


def test_answers_equal_whole_reads_while_reading_only_what_is_new(state):
    rng = random.Random(7)
    log, clock = Log(state), Clock()
    cache = WindowCache(state, clock=clock, lag_s=60)
    now = utcnow()
    for i in range(300):  # two hours of history
        log.write(now - timedelta(hours=2) + timedelta(seconds=24 * i),
                  [{"x": rng.random(), "c": rng.choice("ab")} for _ in range(rng.randint(1, 3))],
                  version=rng.choice(["1.0.0", "1.0.0", "2.0.0"]), ensemble=i % 10 == 0, truncated=i % 37 == 0,
                  status=422 if i % 41 == 0 else 200)
    for _ in range(12):
        now += timedelta(seconds=30)
        for _ in range(rng.randint(0, 5)):  # new traffic, some of it stamped up to 50 s before it became visible
            log.write(now - timedelta(seconds=rng.uniform(0, 50)), [{"x": rng.random(), "c": rng.choice("abc")}],
                      version=rng.choice(["1.0.0", "2.0.0"]), ensemble=rng.random() < 0.2)
        for hours in (1, 3):
            start, end = now - timedelta(hours=hours), now
            cached = cache.sample("t", "m", FEATURES, start, end, version="1.0.0", now=now)
            _same(cached, current_sample(state, "t", "m", FEATURES, start, end, version="1.0.0"))
        clock.now += 30
    # the first 1-hour window, the 3-hour one reaching further back, and one after max_age_s (300 s; 12 x 30 s went by)
    assert cache.whole_reads == 3
    assert cache.incremental_reads == 21
    assert cache.sample("t", "m", FEATURES, now - timedelta(hours=1), now, version="1.0.0", now=now).rows > 0


def test_a_window_that_ended_is_read_whole(state):
    log = Log(state)
    now = utcnow()
    log.write(now - timedelta(hours=3), [{"x": 1.0, "c": "a"}])
    cache = WindowCache(state)
    sample = cache.sample("t", "m", FEATURES, now - timedelta(hours=4), now - timedelta(hours=2), version="1.0.0", now=now)
    assert sample.columns["x"] == [1.0]
    assert (cache.whole_reads, cache.incremental_reads) == (0, 0)  # current_sample, nothing kept


def test_a_record_visible_later_than_the_lag_shows_after_the_next_whole_read(state):
    log, clock = Log(state), Clock()
    cache = WindowCache(state, clock=clock, lag_s=60, max_age_s=300)
    now = utcnow()
    log.write(now - timedelta(minutes=5), [{"x": 1.0, "c": "a"}])
    assert cache.sample("t", "m", FEATURES, now - timedelta(hours=1), now, version="1.0.0", now=now).rows == 1
    log.write(now - timedelta(minutes=3), [{"x": 2.0, "c": "a"}])  # stamped 3 minutes before the last read
    later = now + timedelta(seconds=10)
    assert cache.sample("t", "m", FEATURES, later - timedelta(hours=1), later, version="1.0.0", now=later).rows == 1
    clock.now += 301
    refreshed = cache.sample("t", "m", FEATURES, later - timedelta(hours=1), later, version="1.0.0", now=later)
    assert listed(refreshed.columns["x"]) == [1.0, 2.0] and cache.whole_reads == 2


def test_the_row_cap_keeps_the_newest_and_falls_back_to_a_whole_read(state):
    log = Log(state)
    now = utcnow()
    for i in range(10):
        log.write(now - timedelta(minutes=30 - i), [{"x": float(i), "c": "a"}])
    cache = WindowCache(state, max_rows=4)
    hour = (now - timedelta(hours=1), now)
    first = cache.sample("t", "m", FEATURES, *hour, version="1.0.0", now=now)
    assert listed(first.columns["x"]) == [6.0, 7.0, 8.0, 9.0] and first.sampled
    for i in range(3):
        log.write(now - timedelta(seconds=10 - i), [{"x": 10.0 + i, "c": "a"}])
    later = now + timedelta(seconds=1)
    hour = (later - timedelta(hours=1), later)
    again = cache.sample("t", "m", FEATURES, *hour, version="1.0.0", now=later)
    assert listed(again.columns["x"]) == [9.0, 10.0, 11.0, 12.0] and again.sampled and cache.incremental_reads == 1
    # a window that ends before the newest rows but reaches back into what the cache dropped: read whole
    end = now - timedelta(minutes=20, seconds=30)
    narrow = cache.sample("t", "m", FEATURES, later - timedelta(hours=1), end, version="1.0.0", now=end + timedelta(seconds=1))
    _same(narrow, current_sample(state, "t", "m", FEATURES, later - timedelta(hours=1), end, version="1.0.0", max_rows=4))
    assert listed(narrow.columns["x"]) == [6.0, 7.0, 8.0, 9.0]


def test_memory_is_bounded_least_recently_used_first(state):
    log = Log(state)
    now = utcnow()
    for model in ("a", "b", "c"):
        for i in range(5):
            log.write(now - timedelta(minutes=i + 1), [{"x": 1.0, "c": "a"}], model=model)
    cache = WindowCache(state, max_cells=25)  # two entries of 5 rows x 2 features fit, not three
    hour = (now - timedelta(hours=1), now)
    for model in ("a", "b", "a", "c"):
        assert cache.sample("t", model, FEATURES, *hour, version="1.0.0", now=now).rows == 5
    assert [key[1] for key in cache._entries] == ["a", "c"]  # b was the least recently used
    other = cache.sample("other-tenant", "a", FEATURES, *hour, version="1.0.0", now=now)
    assert other.rows == 0  # keyed by tenant: another tenant's model of the same id shares nothing
