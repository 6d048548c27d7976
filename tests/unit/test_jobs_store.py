"""Job records: idempotency, tenancy, terminal states, pagination."""

from __future__ import annotations

import threading

import pytest

from resources.jobs.records import IdempotencyConflict, JobNotFound, JobStore


@pytest.fixture
def store(state) -> JobStore:
    return JobStore(state)


def test_same_key_and_body_return_the_same_job(store):
    first, created = store.create("t1", kind="training", request={"a": 1}, submitted_by="u", idempotency_key="k")
    again, created_again = store.create("t1", kind="training", request={"a": 1}, submitted_by="u", idempotency_key="k")
    assert created and not created_again and again.job_id == first.job_id
    with pytest.raises(IdempotencyConflict):
        store.create("t1", kind="training", request={"a": 2}, submitted_by="u", idempotency_key="k")
    other_tenant, created_other = store.create("t2", kind="training", request={"a": 1}, submitted_by="u", idempotency_key="k")
    assert created_other and other_tenant.job_id != first.job_id


def test_concurrent_submits_with_one_key_create_one_job(store):
    results, barrier = [], threading.Barrier(4)

    def submit():
        barrier.wait()
        results.append(store.create("t1", kind="tuning", request={"x": 1}, submitted_by="u", idempotency_key="same"))

    threads = [threading.Thread(target=submit) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({record.job_id for record, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert len(store.list("t1", kind="tuning")) == 1


def test_tenancy_and_terminal_states(store):
    record, _ = store.create("t1", kind="training", request={}, submitted_by="u")
    assert record.job_id.startswith("train-job-") and record.status == "submitted"
    with pytest.raises(JobNotFound):
        store.get("t2", record.job_id)
    store.record_run_state(record.job_id, status="failed")
    store.record_outcome(record.job_id, error="boom", result={"a": 1})
    store.record_run_state(record.job_id, status="running")  # a late update cannot revive it
    store.record_outcome(record.job_id, result={"b": 2})
    final = store.get("t1", record.job_id)
    assert (final.status, final.error, final.result) == ("failed", "boom", {"a": 1, "b": 2})
    assert store.record_run_state("no-such-job", status="running") is False
    assert store.record_outcome("no-such-job", result={"c": 3}) is False


def test_list_pages_newest_first(store):
    ids = [store.create("t1", kind="training", request={"i": i}, submitted_by="u")[0].job_id for i in range(5)]
    first = store.list("t1", limit=2)
    second = store.list("t1", limit=2, before=first[-1].job_id)
    third = store.list("t1", limit=2, before=second[-1].job_id)
    assert [r.job_id for r in first + second + third] == list(reversed(ids))
