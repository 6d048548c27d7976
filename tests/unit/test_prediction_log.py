"""The prediction log: committed before ``record`` returns, group commit, per-row failures, flush on close."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from resources.infra.state_db import StateStore
from resources.predictions.log import PredictionLog, PredictionLogClosed, prediction_log

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def db_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'state.db'}"


@pytest.fixture
def state(db_url):
    store = StateStore(database_url=db_url)
    yield store
    store.dispose()


@pytest.fixture
def other(db_url):
    """A second engine on the same file: what another process would see."""
    store = StateStore(database_url=db_url)
    yield store
    store.dispose()


@pytest.fixture
def plog(state):
    log = PredictionLog(state)
    log.start()
    yield log
    log.close()


def fields(request_id: str, **extra) -> dict:
    values = dict(request_id=request_id, tenant_id="t1", model_id="m1", model_version="3")
    values.update(extra)
    return values


def committed_count(store: StateStore) -> int:
    with store.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(prediction_log)).scalar_one()


class GatedInsert:
    """Wraps ``PredictionLog._insert``: records batch sizes, can hold the writer inside a call."""

    def __init__(self, log: PredictionLog, *, hold_first: bool = False, delay_s: float = 0.0) -> None:
        self.original = log._insert
        self.sizes: list[int] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        if not hold_first:
            self.release.set()
        self.delay_s = delay_s
        log._insert = self  # instance attribute shadows the method

    def __call__(self, rows):
        self.sizes.append(len(rows))
        self.entered.set()
        assert self.release.wait(10)
        if self.delay_s:
            time.sleep(self.delay_s)
        return self.original(rows)


def test_table_and_index_are_created(state):
    inspector = sa.inspect(state.engine)
    columns = {c["name"] for c in inspector.get_columns("prediction_log")}
    assert columns == {
        "id", "request_id", "client_request_id", "tenant_id", "subject", "model_id", "model_version", "ensemble_id",
        "at", "latency_ms", "features", "outputs", "status_code",
    }
    indexes = {ix["name"]: ix["column_names"] for ix in inspector.get_indexes("prediction_log")}
    assert indexes["ix_prediction_log_tenant_model_time"] == ["tenant_id", "model_id", "at"]


def test_records_are_readable_newest_first_with_decoded_json(plog):
    base = datetime(2030, 1, 1, 12, tzinfo=UTC)

    async def main():
        await plog.record(**fields("r1", at=base, latency_ms=1.5, features={"age": 41, "plan": "pro"},
                                   outputs={"prediction": 1, "probabilities": [0.2, 0.8], "confidence": 0.8}))
        await plog.record(**fields("r2", at=base + timedelta(seconds=1), model_id="m2", ensemble_id="e1",
                                   features=[1, 2], outputs={"prediction": "a"}, status_code=207))
        # an aware time in another zone is stored and read back as the same instant in UTC
        await plog.record(**fields("r3", at=(base + timedelta(seconds=2)).astimezone(timezone(timedelta(hours=5)))))
        await plog.record(**fields("x1", tenant_id="t2"))

    asyncio.run(main())
    rows = plog.records("t1")
    assert [r["request_id"] for r in rows] == ["r3", "r2", "r1"]
    r3, r2, r1 = rows
    assert r1["features"] == {"age": 41, "plan": "pro"}
    assert r1["outputs"] == {"prediction": 1, "probabilities": [0.2, 0.8], "confidence": 0.8}
    assert r1["latency_ms"] == 1.5 and r1["status_code"] == 200 and r1["ensemble_id"] is None
    assert r1["at"] == base and r1["at"].tzinfo is not None
    assert r2["features"] == [1, 2] and r2["ensemble_id"] == "e1" and r2["status_code"] == 207
    assert r3["at"] == base + timedelta(seconds=2) and r3["features"] is None
    assert [r["request_id"] for r in plog.records("t1", model_id="m2")] == ["r2"]
    assert [r["request_id"] for r in plog.records("t1", limit=1)] == ["r3"]
    assert plog.records("nobody") == []
    assert plog.count("t1") == 3 and plog.count("t2") == 1 and plog.count() == 4


def test_bad_input_raises_in_the_caller_before_anything_is_queued(plog):
    async def main():
        with pytest.raises(TypeError, match="unknown"):
            await plog.record(**fields("a"), colour="red")
        with pytest.raises(TypeError, match="missing"):
            await plog.record(tenant_id="t1", model_id="m1", model_version="1")
        with pytest.raises(TypeError):
            await plog.record(**fields("b", features={"x": object()}))

    asyncio.run(main())
    assert plog.count() == 0 and plog.batches == 0


def test_record_returns_only_once_visible_from_another_engine(plog, other):
    GatedInsert(plog, delay_s=0.05)  # a slow commit: returning before it would be caught

    async def main():
        for i in range(5):
            await plog.record(**fields(f"r{i}"))
            assert committed_count(other) == i + 1

    asyncio.run(main())
    plog.record_sync(**fields("sync"))
    assert committed_count(other) == 6


def test_concurrent_records_share_commits(plog, state):
    commits = []
    sa.event.listen(state.engine, "commit", lambda conn: commits.append(1))

    async def main():
        await asyncio.gather(*(plog.record(**fields(f"r{i}")) for i in range(200)))

    asyncio.run(main())
    assert plog.count() == 200
    assert len(commits) <= 20, len(commits)  # far fewer transactions than records
    assert plog.transactions == plog.batches <= 20


def test_spread_arrivals_still_share_commits(plog, state):
    """Requests that arrive over time (not in one burst) share commits while the writer is busy."""
    gate = GatedInsert(plog, delay_s=0.005)  # a commit that takes 5 ms
    rng = random.Random(7)

    async def one(i):
        await asyncio.sleep(rng.random() * 0.1)
        await plog.record(**fields(f"r{i}"))

    async def main():
        await asyncio.gather(*(one(i) for i in range(200)))

    asyncio.run(main())
    assert plog.count() == 200 and sum(gate.sizes) == 200
    assert len(gate.sizes) < 60, gate.sizes


def test_a_bad_row_fails_only_its_caller_and_the_rest_of_the_batch_commits(plog, other):
    plog.record_sync(**fields("taken"))
    gate = GatedInsert(plog, hold_first=True)

    async def main():
        blocker = asyncio.ensure_future(plog.record(**fields("blocker")))
        await asyncio.to_thread(gate.entered.wait, 5)  # the writer is inside the blocker's insert
        ids = [f"ok{i}" for i in range(5)] + ["taken"] + [f"ok{i}" for i in range(5, 10)] + ["twice", "twice"]
        tasks = [asyncio.ensure_future(plog.record(**fields(rid))) for rid in ids]
        await asyncio.sleep(0.05)  # all twelve are queued behind the held writer
        gate.release.set()
        await blocker
        return ids, await asyncio.gather(*tasks, return_exceptions=True)

    ids, results = asyncio.run(main())
    assert gate.sizes[:2] == [1, 13]  # the blocker alone, then one batch of thirteen ...
    assert len(gate.sizes) == 2 + 13  # ... that failed and was retried row by row
    failed = [rid for rid, result in zip(ids, results, strict=True) if result is not None]
    assert failed == ["taken", "twice"]  # the duplicate of a stored id, and the second of a pair
    assert all(isinstance(results[i], sa.exc.IntegrityError) for i in (5, 12))
    assert committed_count(other) == 1 + 1 + 11
    with pytest.raises(sa.exc.IntegrityError):
        plog.record_sync(**fields("ok3"))


def test_a_database_failure_fails_every_waiter_of_the_batch_and_the_writer_survives(plog):
    original = plog._insert
    calls = []

    def broken(rows):
        calls.append(len(rows))
        raise sa.exc.OperationalError("INSERT", {}, Exception("database is locked"))

    plog._insert = broken

    async def main():
        return await asyncio.gather(*(plog.record(**fields(f"r{i}")) for i in range(20)), return_exceptions=True)

    results = asyncio.run(main())
    assert all(isinstance(r, sa.exc.OperationalError) for r in results)
    assert sum(calls) == 20  # no row-by-row retry for a database-wide failure
    plog._insert = original
    asyncio.run(plog.record(**fields("after")))
    assert plog.count() == 1


def test_a_cancelled_caller_still_gets_its_row_written(plog):
    gate = GatedInsert(plog, hold_first=True)

    async def main():
        task = asyncio.ensure_future(plog.record(**fields("gone")))
        await asyncio.to_thread(gate.entered.wait, 5)
        task.cancel()
        gate.release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        await plog.record(**fields("next"))

    asyncio.run(main())
    assert plog.count() == 2


def test_close_flushes_everything_queued(state, other):
    plog = PredictionLog(state, max_batch=50)
    plog.start()
    gate = GatedInsert(plog, hold_first=True)

    async def main():
        tasks = [asyncio.ensure_future(plog.record(**fields(f"r{i}"))) for i in range(301)]
        await asyncio.to_thread(gate.entered.wait, 5)
        await asyncio.sleep(0.05)  # every record is queued; the writer holds the first
        closing = asyncio.ensure_future(asyncio.to_thread(plog.close))
        await asyncio.sleep(0.05)
        gate.release.set()
        await closing
        assert committed_count(other) == 301  # committed by the time close() returns
        await asyncio.gather(*tasks)  # and every waiter was woken without error

    asyncio.run(main())
    assert max(gate.sizes) <= 50 and sum(gate.sizes) == 301
    with pytest.raises(PredictionLogClosed):
        plog.record_sync(**fields("late"))
    with pytest.raises(PredictionLogClosed):
        asyncio.run(plog.record(**fields("late")))
    plog.close()  # idempotent


def test_record_sync_from_many_threads_and_lazy_start(state):
    plog = PredictionLog(state)  # not started: the first record starts the writer
    errors = []

    def worker(k):
        try:
            for i in range(25):
                plog.record_sync(**fields(f"t{k}-{i}", features={"k": k}))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    plog.close()
    assert not errors and plog.count("t1") == 200
    assert plog.transactions < 200


def test_json_encoding_of_numpy_like_values(plog):
    class Arrayish:
        def tolist(self):
            return [0.25, 0.75]

    plog.record_sync(**fields("np", outputs={"probabilities": Arrayish()}))
    (row,) = plog.records("t1")
    assert row["outputs"] == {"probabilities": [0.25, 0.75]}
    with plog.state.begin() as conn:
        raw = conn.execute(sa.select(prediction_log.c.outputs)).scalar_one()
    assert json.loads(raw) == {"probabilities": [0.25, 0.75]}


def test_import_has_no_side_effects(tmp_path):
    code = (
        "import sys, threading, resources.predictions.log;"
        "print(threading.active_count(), sorted(m for m in ('mlflow', 'ray', 'torch', 'feast', 'sklearn', 'numpy')"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=str(tmp_path), env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT)})
    assert out.stdout.strip().split(maxsplit=1) == ["1", "[]"]
    assert list(tmp_path.iterdir()) == []
