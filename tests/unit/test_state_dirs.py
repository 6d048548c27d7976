"""The data directory is owner-only, and Ray's temp dir is inside it (through a safe short link
when the real path is too long for Ray's unix sockets)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from mlservice.launcher import state_dirs


@pytest.fixture
def restore_umask():
    old = os.umask(0o022)
    os.umask(old)
    yield
    os.umask(old)


@pytest.fixture
def links(monkeypatch, tmp_path):
    """Links go to a folder of the test, not /tmp; a long data dir makes them necessary."""
    folder = tmp_path / "links"
    folder.mkdir()
    monkeypatch.setattr(state_dirs, "LINK_PARENT", folder)
    data_dir = tmp_path / ("a-data-directory-with-a-long-name-" + "x" * 40)
    data_dir.mkdir()
    assert state_dirs.needs_link(data_dir)
    return data_dir


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_an_existing_open_data_dir_becomes_owner_only_and_new_files_0600(tmp_path, restore_umask):
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)
    os.chmod(data_dir, 0o755)
    state_dirs.make_private(data_dir)
    assert mode(data_dir) == 0o700
    (data_dir / "state.db").write_text("x")
    (data_dir / "logs").mkdir()
    assert mode(data_dir / "state.db") == 0o600 and mode(data_dir / "logs") == 0o700


def test_a_new_nested_data_dir_is_created_0700(tmp_path, restore_umask):
    data_dir = tmp_path / "a" / "data"
    state_dirs.make_private(data_dir)
    assert mode(data_dir) == 0o700


def test_a_short_data_dir_needs_no_link():
    short = Path("/srv/ml")
    assert not state_dirs.needs_link(short)
    assert state_dirs.ray_temp_dir(short) == short / "ray"


def test_a_long_data_dir_gets_a_link_to_its_own_ray_dir(links):
    path = state_dirs.prepare_ray_temp_dir(links)
    assert path == state_dirs.ray_temp_link(links) and path.is_symlink()
    assert os.readlink(path) == str(links / "ray") and (links / "ray").is_dir()
    assert state_dirs.prepare_ray_temp_dir(links) == path  # idempotent


def test_our_link_to_somewhere_else_is_replaced(links, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, state_dirs.ray_temp_link(links))
    state_dirs.prepare_ray_temp_dir(links)
    assert os.readlink(state_dirs.ray_temp_link(links)) == str(links / "ray")
    assert elsewhere.is_dir()  # the old target is left alone


def test_a_directory_at_the_link_name_is_refused(links):
    state_dirs.ray_temp_link(links).mkdir()
    with pytest.raises(RuntimeError, match="refusing"):
        state_dirs.prepare_ray_temp_dir(links)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make a link owned by another user")
def test_another_users_link_is_refused_and_never_followed(links, tmp_path):
    trap = tmp_path / "trap"
    trap.mkdir()
    link = state_dirs.ray_temp_link(links)
    os.symlink(trap, link)
    os.lchown(link, 65534, 65534)
    with pytest.raises(RuntimeError, match="uid 65534"):
        state_dirs.prepare_ray_temp_dir(links)
    assert os.readlink(link) == str(trap) and list(trap.iterdir()) == []
    state_dirs.remove_ray_temp_dir(links)  # not ours: left in place
    assert os.path.islink(link)


def test_remove_takes_the_link_and_the_real_dir(links):
    path = state_dirs.prepare_ray_temp_dir(links)
    (links / "ray" / "session_x").mkdir()
    state_dirs.remove_ray_temp_dir(links)
    assert not os.path.lexists(path) and not (links / "ray").exists()


def test_the_link_names_the_user(links):
    assert f"-{os.geteuid()}-" in state_dirs.ray_temp_link(links).name


def test_the_code_server_serves_the_definitions_on_a_socket_of_the_data_dir_only_its_user_reaches(restore_umask, tmp_path):
    """``mlservice up``'s Dagster code server: the platform's definitions under the location name the API
    launches into, on a unix socket that a long data dir still fits (through the short link), owner-only."""
    import signal
    import subprocess
    import sys

    import yaml

    from mlservice.launcher import dagster_instance
    from mlservice.launcher.processes import unix_socket_accepts, wait_until
    from resources.infra.dagster_runs import LOCATION_NAME

    data_dir = tmp_path / ("a-data-directory-with-a-long-name-" + "x" * 40)  # the link in /tmp, as in production
    assert state_dirs.needs_link(data_dir)
    state_dirs.make_private(data_dir)  # umask 0o077, as the launcher sets it before starting anything
    state_dirs.prepare_ray_temp_dir(data_dir)
    socket = state_dirs.code_server_socket(data_dir)
    assert len(str(socket).encode()) <= 107 and socket.parent.resolve() == (data_dir / "ray").resolve()
    workspace = dagster_instance.write_workspace(tmp_path / "dagster", socket)
    assert yaml.safe_load(workspace.read_text()) == {
        "load_from": [{"grpc_server": {"socket": str(socket), "location_name": LOCATION_NAME}}]}
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster")}
    server = subprocess.Popen(dagster_instance.code_server_argv(sys.executable, socket), env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: unix_socket_accepts(socket), timeout_s=120, what="the code server")
        from dagster._grpc.client import DagsterGrpcClient

        client = DagsterGrpcClient(socket=str(socket))
        assert client.ping("hello")["echo"] == "hello"
        assert "pipelines.definitions" in client.list_repositories()
        assert mode(socket.resolve()) & 0o077 == 0  # no one else's to connect to
    finally:
        os.killpg(server.pid, signal.SIGKILL)  # it does not end on SIGTERM (mlservice up gives it 5 s, then SIGKILL)
        server.wait(timeout=30)
        state_dirs.unlink_ray_temp_link(data_dir)
