"""The MLflow breaker (resources/infra/breaker.py) and the registry behind it: a tracking server that
accepts connections and never answers costs the first caller one client timeout and the next ones
nothing (503 SERVICE_UNAVAILABLE with a retry time), one caller at a time probes after the
cooldown, and an answer closes the breaker again."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from resources.errors import DependencyUnavailable
from resources.infra.breaker import Breaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_open_after_a_failure_one_prober_after_the_cooldown_closed_by_an_answer():
    clock = Clock()
    breaker = Breaker(cooldown_s=5.0, clock=clock)
    assert breaker.admit() is None and not breaker.is_open
    breaker.failed()
    assert breaker.admit() == pytest.approx(5.0)
    clock.now += 5.0
    assert breaker.admit() is None  # this thread probes
    assert breaker.admit() is None  # and may nest calls
    others: list[float | None] = []
    thread = threading.Thread(target=lambda: others.append(breaker.admit()))
    thread.start()
    thread.join()
    assert others[0] is not None  # everyone else still fails at once
    breaker.failed()  # the probe failed: open again for a whole cooldown
    assert breaker.admit() == pytest.approx(5.0)
    clock.now += 6.0
    assert breaker.admit() is None
    breaker.succeeded()
    assert not breaker.is_open and breaker.admit() is None


def test_an_interrupted_probe_lets_another_caller_probe():
    clock = Clock()
    breaker = Breaker(cooldown_s=1.0, clock=clock)
    breaker.failed()
    clock.now += 2.0
    assert breaker.admit() is None
    breaker.settle()  # neither verdict (the call was interrupted)
    found: list[float | None] = []
    thread = threading.Thread(target=lambda: found.append(breaker.admit()))
    thread.start()
    thread.join()
    assert found == [None]


@pytest.fixture
def hung_server():
    """A loopback port whose connections are accepted by the kernel and never answered (a server
    stopped with SIGSTOP looks the same)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_a_hung_tracking_server_costs_one_timeout_then_fails_at_once(hung_server, state, monkeypatch):
    from resources.models.registry import ModelRegistry

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    registry = ModelRegistry(tracking_uri=hung_server, state=state)
    started = time.monotonic()
    with pytest.raises(DependencyUnavailable) as first:
        registry.list_models("tenant-a")
    assert time.monotonic() - started >= 1.0  # it waited for the server once
    assert first.value.details == {"component": "mlflow"} and first.value.retry_after_s == 5.0

    started = time.monotonic()
    with pytest.raises(DependencyUnavailable) as second:
        registry.get_model("tenant-a", "8f2b6a8e-0c1d-4e5f-9a0b-1c2d3e4f5a6b")
    assert time.monotonic() - started < 0.5  # not another timeout
    assert 0 < second.value.retry_after_s <= 5.0 and "retry shortly" in second.value.message


def test_an_answering_server_closes_the_breaker(state, tmp_path):
    """A domain answer (model not found) is an answer: the breaker closes."""
    from resources.errors import ModelNotFound
    from resources.infra.breaker import breaker_for
    from resources.models.registry import ModelRegistry

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    registry = ModelRegistry(tracking_uri=uri, state=state)
    breaker = breaker_for(uri)
    breaker.failed()
    breaker._open_until = time.monotonic() - 1  # the cooldown has passed
    with pytest.raises(ModelNotFound):
        registry.get_model("tenant-a", "8f2b6a8e-0c1d-4e5f-9a0b-1c2d3e4f5a6b")
    assert not breaker.is_open


def test_the_apis_mlflow_client_settings_are_what_mlflow_reads(monkeypatch):
    """Each default the API sets parses as MLflow's own variable of that name (an int it cannot
    read fails every registry call with a 500)."""
    import mlflow.environment_variables as variables

    from serving_api.main import _MLFLOW_CLIENT_DEFAULTS

    for name, value in _MLFLOW_CLIENT_DEFAULTS.items():
        monkeypatch.setenv(name, value)
        assert str(getattr(variables, name).get()).lower() == value.lower(), name
