"""``resources.infra.ray_tasks.wait_for``: an interrupted wait (how Dagster stops a run: SIGINT) cancels
the task it waited on, so no stopped run leaves a task holding the cluster's CPUs."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from resources.infra.ray_tasks import wait_for


def _sleeper(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def test_the_answer_of_a_finished_task(local_ray):
    task = local_ray.remote(num_cpus=1)(_sleeper)
    assert wait_for(task.remote(0.1), poll_s=0.05) == 0.1


def test_an_interrupted_wait_cancels_its_task(local_ray):
    # Python's own handler, as in a Dagster step (other tests of the session may have left Ray
    # Train's or Tune's, which end their own runs and raise nothing)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        task = local_ray.remote(num_cpus=1, max_retries=0)(_sleeper)
        ref = task.remote(120)
        threading.Timer(1.5, os.kill, args=(os.getpid(), signal.SIGINT)).start()
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            wait_for(ref)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert time.monotonic() - started < 10
    with pytest.raises(local_ray.exceptions.TaskCancelledError):
        local_ray.get(ref, timeout=30)  # cancelled, not still sleeping (120 s)
