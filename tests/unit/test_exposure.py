"""mlservice.launcher.exposure: real sockets in child processes, found from /proc and judged."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from mlservice.launcher import exposure

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="reads Linux /proc")

# Binds every (family, type, host) given, prints the ports, then (optionally in a grandchild that
# sits in a process group of its own, as Ray's workers do) waits to be killed.
CHILD = r"""
import json, os, socket, sys, time
specs = json.loads(sys.argv[1])
if sys.argv[2] == "grandchild" and os.fork() != 0:
    time.sleep(600)
if sys.argv[2] == "grandchild":
    os.setpgid(0, 0)
ports = []
keep = []
for family, kind, host in specs:
    sock = socket.socket(getattr(socket, family), getattr(socket, kind))
    sock.bind((host, 0))
    if kind == "SOCK_STREAM":
        sock.listen()
    keep.append(sock)
    ports.append(sock.getsockname()[1])
print(json.dumps(ports), flush=True)
time.sleep(600)
"""


@pytest.fixture
def spawn():
    started: list[subprocess.Popen] = []

    def _spawn(*specs: tuple[str, str, str], grandchild: bool = False) -> tuple[subprocess.Popen, list[int]]:
        import json

        proc = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(specs), "grandchild" if grandchild else "-"],
                                stdout=subprocess.PIPE, text=True, start_new_session=True)
        started.append(proc)
        return proc, json.loads(proc.stdout.readline())

    yield _spawn
    for proc in started:  # each child leads its own session; the grandchild's group is its own pid
        for pid in exposure.processes_of([proc.pid]):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait(timeout=10)


def _ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


def test_all_interfaces_is_refused_and_named(spawn):
    proc, [port] = spawn(("AF_INET", "SOCK_STREAM", "0.0.0.0"))
    found = exposure.offenders([proc.pid])
    assert [(f.pid, f.proto, f.address, f.port) for f in found] == [(proc.pid, "tcp", "0.0.0.0", port)]
    message = str(exposure.ExposureError(found))
    assert f"0.0.0.0:{port}" in message and f"pid {proc.pid}" in message and "python" in message


def test_loopback_is_accepted_but_listed(spawn):
    proc, [port] = spawn(("AF_INET", "SOCK_STREAM", "127.0.0.1"))
    listed = exposure.listeners(exposure.processes_of([proc.pid]))
    assert [(f.address, f.port) for f in listed] == [("127.0.0.1", port)]
    assert exposure.offenders([proc.pid]) == []


def test_udp_on_all_interfaces_is_refused(spawn):
    proc, [port] = spawn(("AF_INET", "SOCK_DGRAM", "0.0.0.0"))
    assert [(f.proto, f.port) for f in exposure.offenders([proc.pid])] == [("udp", port)]


@pytest.mark.skipif(not _ipv6(), reason="no IPv6 on this host")
def test_ipv6_any_is_refused_and_mapped_loopback_accepted(spawn):
    proc, [any_port, mapped_port, lo_port] = spawn(
        ("AF_INET6", "SOCK_STREAM", "::"), ("AF_INET6", "SOCK_STREAM", "::ffff:127.0.0.1"), ("AF_INET6", "SOCK_STREAM", "::1"))
    listed = {f.port: f.address for f in exposure.listeners([proc.pid])}
    assert listed == {any_port: "::", mapped_port: "::ffff:127.0.0.1", lo_port: "::1"}
    assert [f.port for f in exposure.offenders([proc.pid])] == [any_port]


def test_a_grandchild_in_its_own_process_group_is_found(spawn):
    """Ray's workers sit in process groups of their own inside the head's session."""
    proc, [port] = spawn(("AF_INET", "SOCK_STREAM", "0.0.0.0"), grandchild=True)
    [offender] = exposure.offenders([proc.pid])
    assert offender.port == port and offender.pid != proc.pid
    assert os.getpgid(offender.pid) == offender.pid != os.getpgid(proc.pid)


def test_the_api_may_listen_on_its_configured_host_only(spawn):
    api, [api_port, other_port] = spawn(("AF_INET", "SOCK_STREAM", "0.0.0.0"), ("AF_INET", "SOCK_STREAM", "0.0.0.0"))
    ray, [ray_port] = spawn(("AF_INET", "SOCK_STREAM", "0.0.0.0"))
    found = exposure.offenders([api.pid, ray.pid], api_root=api.pid, api_host="0.0.0.0", api_port=api_port)
    # the API's own port passes; its second port and another part on all interfaces do not
    assert sorted(f.port for f in found) == sorted([other_port, ray_port])
    # the same sockets with the API configured on loopback: every one is refused
    found = exposure.offenders([api.pid, ray.pid], api_root=api.pid, api_host="127.0.0.1", api_port=api_port)
    assert sorted(f.port for f in found) == sorted([api_port, other_port, ray_port])
    # another part may not use the API's allowance
    found = exposure.offenders([api.pid, ray.pid], api_root=ray.pid, api_host="0.0.0.0", api_port=api_port)
    assert api_port in {f.port for f in found}


def test_a_stopped_process_no_longer_counts(spawn):
    proc, _ = spawn(("AF_INET", "SOCK_STREAM", "0.0.0.0"))
    assert exposure.offenders([proc.pid])
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    deadline = time.monotonic() + 5
    while exposure.offenders([proc.pid]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert exposure.offenders([proc.pid]) == []


@pytest.mark.parametrize("address, loopback", [
    ("127.0.0.1", True), ("127.3.2.1", True), ("::1", True), ("::ffff:127.0.0.1", True),
    ("0.0.0.0", False), ("::", False), ("192.0.2.2", False), ("::ffff:192.0.2.2", False), ("fe80::1", False),
])
def test_is_loopback(address, loopback):
    assert exposure.is_loopback(address) is loopback
