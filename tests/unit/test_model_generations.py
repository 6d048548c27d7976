"""Model change counters in Redis (resources/models/change_counters.py) on the session's real Redis,
and without Redis: a read answers None within the timeout (the cache then keeps its TTL), a bump
is logged, not raised (the registry change it follows is already written)."""

from __future__ import annotations

import logging
import time
import uuid

from mlservice.launcher.processes import free_port
from resources.infra.shared_redis import TIMEOUT_S
from resources.models.change_counters import ModelGenerations


def test_counters_start_at_zero_and_count_each_change_per_model(redis_server):
    generations, model = ModelGenerations(redis_server.url()), uuid.uuid4().hex
    assert generations.current("t1", model) == 0
    generations.bump("t1", model)
    generations.bump("t1", model)
    assert generations.current("t1", model) == 2
    assert ModelGenerations(redis_server.url()).current("t1", model) == 2  # another process reads the same
    assert generations.current("t2", model) == 0  # tenants apart


def test_without_redis_reads_are_none_at_once_and_bumps_only_log(caplog):
    generations = ModelGenerations(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    began = time.perf_counter()
    assert [generations.current("t", "m") for _ in range(20)] == [None] * 20
    assert time.perf_counter() - began < 2 * TIMEOUT_S + 0.5  # one failed try, then none until RETRY_S
    with caplog.at_level(logging.WARNING, logger="resources.models.change_counters"):
        generations.bump("t", "m")
    assert "other API processes see it within their resolution TTL" in caplog.text
