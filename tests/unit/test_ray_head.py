"""The Ray head's command line: loopback, no client server, free ports for every server it opens.
(That nothing listens beyond loopback with it is measured by the platform integration test.)"""

from __future__ import annotations

from pathlib import Path

from mlservice.config.settings import Settings
from mlservice.launcher import ray_head


def test_head_command_has_no_client_server_and_binds_loopback(tmp_path):
    settings = Settings(data_dir=tmp_path, ray_port=6391, ray_dashboard_port=8291)
    argv, env = ray_head.head_command(settings, Path("/tmp/x"))
    assert argv[1:3] == ["-m", "mlservice.launcher.ray_head"] and not any("client" in arg for arg in argv)
    flags = dict(zip(argv[::2], argv[1::2], strict=False)) | dict(zip(argv[1::2], argv[2::2], strict=False))
    assert flags["--node-ip-address"] == "127.0.0.1" and flags["--dashboard-host"] == "127.0.0.1"
    assert (flags["--port"], flags["--temp-dir"]) == ("6391", "/tmp/x")
    ports = [int(flags["--dashboard-agent-listen-port"]), int(flags["--metrics-export-port"]),
             int(env["AUTOSCALER_METRIC_PORT"]), int(env["DASHBOARD_METRIC_PORT"])]
    assert len(set(ports)) == 4 and not {44217, 44227, 6391, 8291} & set(ports)
    assert not [p for p in ports if 10002 <= p < 20000]  # Ray's worker range


def test_asking_for_a_client_server_port_is_refused(capsys):
    assert ray_head.main(["start", "--head", "--ray-client-server-port=10001"]) == 2
    assert "not allowed" in capsys.readouterr().err


def test_serve_runs_throughput_settings_that_open_no_listener(tmp_path, monkeypatch):
    monkeypatch.setenv("RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE", "1")  # an operator's own value wins
    _, env = ray_head.head_command(Settings(data_dir=tmp_path), Path("/tmp/x"))
    assert env["RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD"] == env["RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP"] == "0"
    assert env["RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE"] == "1"
    # gRPC by default and direct ingress would open listeners per replica: never set
    assert not {"RAY_SERVE_USE_GRPC_BY_DEFAULT", "RAY_SERVE_ENABLE_DIRECT_INGRESS", "RAY_SERVE_THROUGHPUT_OPTIMIZED"} & set(env)
