"""``python -m mlservice.launcher.ray_head start --head ...``: Ray's own CLI, without the Ray client server.

``ray start --head`` starts a Ray client server (``ray://``) on port 10001 whenever grpc is
importable, and refuses ``--ray-client-server-port`` values below 1024, so there is no flag that
turns it off. Nothing in the platform connects with ``ray://`` (drivers join the GCS address,
the API asks the dashboard over HTTP), and the client server runs arbitrary code for anyone who
reaches it. Ray decides in ``ray.scripts.scripts.start``: ``has_ray_client =
get_ray_client_dependency_error() is None``, and only when that is true does it default the port
to 10001; ``Node.start_head_processes`` then starts the client server only for a set port. This
wrapper makes that check report the client's dependencies as missing, so the port stays unset
and no client server starts. Everything else is Ray's CLI unchanged.

Run it with ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` in the environment: Ray then takes loopback
as the node's address (``get_node_ip_address``), and every Ray server binds 127.0.0.1 instead of
the host's address or all interfaces (``mlservice.launcher.child_env.RAY_LOOPBACK_ENV``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from mlservice.launcher.processes import free_port

if TYPE_CHECKING:
    from mlservice.config.settings import Settings
    from mlservice.launcher.processes import ManagedProcess

CLIENT_DISABLED = ImportError("the Ray client server is disabled by mlservice (nothing uses ray://)")

# Ray Serve's "throughput optimized" settings (``RAY_SERVE_THROUGHPUT_OPTIMIZED``) that open no new
# listener (its gRPC-by-default and direct ingress would: left off): user code and the proxy's
# router on their process's main event loop instead of one more thread each, request-path logs
# buffered, and Serve's logs to its own files only (not also to stderr, which Ray's log monitor
# tails and ships). Measured with benchmarks/deployment_serving.py (1 replica, concurrency 8):
# 102-104 -> 140 req/s. The head's environment reaches every Serve process; a value already in
# the environment wins.
SERVE_ENV = {
    "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0",
    "RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP": "0",
    "RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE": "1000",
    "RAY_SERVE_LOG_TO_STDERR": "0",
}


def head_command(settings: Settings, temp_dir: Path) -> tuple[list[str], dict[str, str]]:
    """The head's command line and the environment it adds: free loopback ports for the agent and
    the metrics servers (the autoscaler's and dashboard's take 44217 and 44227 unless told), so two
    platforms run side by side. No ``--ray-client-server-port``: the client server stays off."""
    s = settings
    taken = {s.api_port, s.dagster_port, s.mlflow_port, s.ray_port, s.ray_dashboard_port, s.s3_port, s.serve_port}
    ports: list[int] = []
    for _ in range(4):
        ports.append(free_port(exclude=taken | set(ports)))
    agent, metrics, autoscaler_metrics, dashboard_metrics = ports
    argv = [
        sys.executable, "-m", "mlservice.launcher.ray_head", "start", "--head", "--block", "--disable-usage-stats",
        "--node-ip-address", "127.0.0.1", "--port", str(s.ray_port),
        "--dashboard-host", "127.0.0.1", "--dashboard-port", str(s.ray_dashboard_port),
        "--dashboard-agent-listen-port", str(agent), "--metrics-export-port", str(metrics),
        "--temp-dir", str(temp_dir),
    ]
    return argv, {"AUTOSCALER_METRIC_PORT": str(autoscaler_metrics), "DASHBOARD_METRIC_PORT": str(dashboard_metrics),
                  **{name: os.environ.get(name, value) for name, value in SERVE_ENV.items()}}


def started(head: ManagedProcess) -> bool:
    """``ray start`` finished its start-up: it prints this once the raylet registered with GCS
    (GCS answering alone is not enough: the CLI exits when the raylet takes over 30 s to register)."""
    return head.alive() and "Ray runtime started." in head.log_since_start()


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if any(arg.split("=", 1)[0] == "--ray-client-server-port" for arg in args):
        print("mlservice.launcher.ray_head: --ray-client-server-port is not allowed (the client server stays off)", file=sys.stderr)
        return 2
    from ray.scripts import scripts

    scripts.get_ray_client_dependency_error = lambda: CLIENT_DISABLED
    return scripts.cli.main(args=argv, prog_name="ray")


if __name__ == "__main__":
    sys.exit(main())
