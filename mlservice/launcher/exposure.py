"""Which sockets the platform's own processes listen on, and which of them reach beyond loopback.

Read from ``/proc`` (Linux): ``/proc/net/{tcp,tcp6,udp,udp6}`` map socket inodes to local
addresses, ``/proc/<pid>/fd`` maps processes to the inodes they hold. A process belongs to the
platform when it is in the session of a child the launcher started (every child starts its own
session; Ray puts its workers in process groups of their own but the same session) or descends
from one. ``mlservice up`` refuses to run when anything listens beyond loopback, except the API on
the host that ``MLSERVICE_API_HOST`` names; the integration tests use the same listing.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
_TCP_LISTEN, _UDP_UNCONNECTED = "0A", "07"


@dataclass(frozen=True)
class Listener:
    pid: int
    process: str  # the command name (/proc/<pid>/comm)
    proto: str  # tcp, tcp6, udp, udp6
    address: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.process} (pid {self.pid}) listens on {self.proto} {host}:{self.port}"


def is_loopback(address: str) -> bool:
    """127.0.0.0/8, ::1 and IPv4-mapped loopback (::ffff:127.0.0.1) are loopback; 0.0.0.0 and :: are not."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def _decode(hex_address: str) -> tuple[str, int]:
    """``0100007F:1F90`` -> ('127.0.0.1', 8080); IPv6 is four 32-bit words, each in host byte order."""
    host, port = hex_address.split(":")
    raw = bytes.fromhex(host)
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4)) if sys.byteorder == "little" else raw
    family = socket.AF_INET if len(raw) == 4 else socket.AF_INET6
    return _canonical(socket.inet_ntop(family, words)), int(port, 16)


def _canonical(address: str) -> str:
    """One spelling per address; IPv4-mapped as ``::ffff:127.0.0.1`` (as ss prints it)."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return f"::ffff:{ip.ipv4_mapped}"
    return str(ip)


def _bound_sockets(proc_root: Path = PROC) -> dict[int, tuple[str, str, int]]:
    """inode -> (proto, address, port) of every listening TCP and unconnected bound UDP socket."""
    found: dict[int, tuple[str, str, int]] = {}
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        try:
            lines = (proc_root / "net" / proto).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote, state, inode = fields[1], fields[2], fields[3], int(fields[9])
            listening = state == _TCP_LISTEN if proto.startswith("tcp") else (
                state == _UDP_UNCONNECTED and set(remote.split(":")[1]) == {"0"})
            if listening and inode:
                address, port = _decode(local)
                found[inode] = (proto, address, port)
    return found


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, session id) from /proc/<pid>/stat; None when it is gone or a zombie."""
    try:
        fields = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else (int(fields[1]), int(fields[3]))


def processes_of(roots: Iterable[int]) -> set[int]:
    """Live pids in the sessions of ``roots`` (each a session leader) or descending from one."""
    roots = set(roots)
    table = {int(e.name): _stat(int(e.name)) for e in PROC.iterdir() if e.name.isdigit()}
    table = {pid: st for pid, st in table.items() if st is not None}
    members = {pid for pid, (_, sid) in table.items() if sid in roots} | (roots & set(table))
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    stack = list(members)
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in members:
                members.add(child)
                stack.append(child)
    return members


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    try:
        fds = list((PROC / str(pid) / "fd").iterdir())
    except OSError:
        return inodes
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def listeners(pids: Iterable[int]) -> list[Listener]:
    """Every listening socket (TCP LISTEN, bound unconnected UDP) held by one of ``pids``."""
    bound = _bound_sockets()
    found = []
    for pid in sorted(set(pids)):
        try:
            name = (PROC / str(pid) / "comm").read_text().strip()
        except OSError:
            continue
        for inode in _socket_inodes(pid):
            if inode in bound:
                proto, address, port = bound[inode]
                found.append(Listener(pid, name, proto, address, port))
    return found


def host_addresses(host: str) -> set[str]:
    """The addresses a server given ``host`` binds (``0.0.0.0``/``::`` stay themselves)."""
    try:
        return {_canonical(host)}
    except ValueError:
        pass
    try:
        return {_canonical(info[4][0].split("%")[0]) for info in socket.getaddrinfo(host, None)}
    except socket.gaierror:
        return set()


def exposed(found: Iterable[Listener], allowed: Iterable[tuple[int, str, int]] = ()) -> list[Listener]:
    """The listeners beyond loopback that are not allowed; ``allowed`` holds (pid, address, port)."""
    allow = {(pid, _canonical(address), port) for pid, address, port in allowed}
    return [item for item in found
            if not is_loopback(item.address) and (item.pid, item.address, item.port) not in allow]


def offenders(roots: Iterable[int], *, api_root: int | None = None, api_host: str = "127.0.0.1",
              api_port: int | None = None) -> list[Listener]:
    """What the processes of ``roots`` expose beyond loopback; the API (the session ``api_root``)
    may listen on ``api_port`` at the addresses of ``api_host`` when that host is not loopback."""
    allowed: set[tuple[int, str, int]] = set()
    addresses = host_addresses(api_host)
    if api_root is not None and api_port is not None and not all(is_loopback(a) for a in addresses):
        allowed = {(pid, address, api_port) for pid in processes_of([api_root]) for address in addresses}
    return exposed(listeners(processes_of(roots)), allowed)


class ExposureError(RuntimeError):
    def __init__(self, offenders: list[Listener]):
        self.offenders = offenders
        lines = "\n".join(f"  {item}" for item in offenders)
        super().__init__(
            "refusing to run: platform processes listen beyond loopback (only the API may, and only"
            f" on the host that MLSERVICE_API_HOST names):\n{lines}"
        )
