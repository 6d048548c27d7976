"""The API's Ray probe (resources/infra/ray_cluster.py): one failed health answer of a busy head is asked
again before a job is refused; a head that keeps failing, or is not there, is RAY_UNAVAILABLE."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from resources.errors import RayUnavailable
from resources.infra.ray_cluster import RayCluster


@contextmanager
def dashboard(statuses: list[int]) -> Iterator[tuple[str, list[int]]]:
    """A loopback server answering /api/gcs_healthz with ``statuses`` in turn (then the last)."""
    served: list[int] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            status = statuses[min(len(served), len(statuses) - 1)]
            served.append(status)
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b"success" if status == 200 else b"GCS not healthy")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", served
    finally:
        server.shutdown()
        server.server_close()


def test_one_failed_probe_is_asked_again():
    with dashboard([503, 200]) as (url, served):
        RayCluster(address="127.0.0.1:1", dashboard_url=url).ensure_reachable(pause_s=0.01)
    assert served == [503, 200]


def test_a_head_that_keeps_failing_is_unavailable():
    with dashboard([503]) as (url, served), pytest.raises(RayUnavailable, match="HTTP 503"):
        RayCluster(address="127.0.0.1:1", dashboard_url=url).ensure_reachable(pause_s=0.01)
    assert served == [503, 503]


def test_no_head_at_all_is_unavailable():
    with dashboard([200]) as (url, _):
        pass  # the server is gone: its port refuses
    with pytest.raises(RayUnavailable, match="unreachable"):
        RayCluster(address="127.0.0.1:1", dashboard_url=url, timeout_s=1).ensure_reachable(pause_s=0.01)
