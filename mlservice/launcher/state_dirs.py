"""The data directory is private to its owner, and Ray's temp dir lives inside it.

``mlservice up`` sets the umask to 0o077 before it creates anything, so every directory it and its
children create is 0700 and every file 0600 (state DB, MLflow store, Feast stores, logs, Ray's
session files), and it narrows an existing data directory to 0700.

Ray's temp dir is ``$MLSERVICE_DATA_DIR/ray``. Ray puts unix sockets under
``<temp dir>/session_<time>_<pid>/sockets/`` and refuses a socket path over 107 bytes, so when the
real path is too long Ray is given a short symbolic link in /tmp that points to it (Ray makes its
temp dir mode 0777; the 0700 data directory above it keeps others out, and a link gives no access
of its own). The link is created without following anything: a link of ours that points elsewhere
is replaced, anything else at that name (another user's link, a file, a directory) is refused.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

UMASK = 0o077
# <temp>/session_<date>_<time>_<usec>_<pid up to 7 digits>/sockets/<name>; the longest name in Ray
# 2.60 is dash_MetricsHead (16 bytes): allow 24.
_SOCKET_SUFFIX_BYTES = len("/session_2026-01-01_00-00-00_123456_1234567/sockets/") + 24
_SOCKET_MAX_BYTES = 107
LINK_PARENT = Path("/tmp")


def make_private(data_dir: Path) -> None:
    """umask 0o077 for this process (its children inherit it), and the data dir 0700."""
    os.umask(UMASK)
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(data_dir, 0o700)


def ray_temp_real(data_dir: Path) -> Path:
    return data_dir / "ray"


def ray_temp_link(data_dir: Path) -> Path:
    digest = hashlib.sha1(str(data_dir).encode()).hexdigest()[:10]
    return LINK_PARENT / f"mlservice-ray-{os.geteuid()}-{digest}"


def needs_link(data_dir: Path) -> bool:
    return len(str(ray_temp_real(data_dir)).encode()) + _SOCKET_SUFFIX_BYTES > _SOCKET_MAX_BYTES


def ray_temp_dir(data_dir: Path) -> Path:
    """The path Ray is given: the real directory, or the short link to it."""
    return ray_temp_link(data_dir) if needs_link(data_dir) else ray_temp_real(data_dir)


def prepare_ray_temp_dir(data_dir: Path) -> Path:
    """Create the real directory (0700) and, where needed, the link; return the path for Ray."""
    real = ray_temp_real(data_dir)
    real.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not needs_link(data_dir):
        return real
    link = ray_temp_link(data_dir)
    for _attempt in range(3):
        try:
            os.symlink(real, link)
            return link
        except FileExistsError:
            pass
        try:
            info = os.lstat(link)
        except FileNotFoundError:
            continue  # removed in between: try again
        if not stat.S_ISLNK(info.st_mode) or info.st_uid != os.geteuid():
            kind = "link" if stat.S_ISLNK(info.st_mode) else "file or directory"
            raise RuntimeError(
                f"{link} (Ray's temp dir link) exists as a {kind} owned by uid {info.st_uid}; "
                "refusing to use it: remove it or use a shorter MLSERVICE_DATA_DIR"
            )
        if os.readlink(link) == str(real):
            return link
        os.unlink(link)  # our own link to an old place: replace it
    raise RuntimeError(f"could not create Ray's temp dir link {link}")


def code_server_socket(data_dir: Path) -> Path:
    """The unix socket of the platform's Dagster code server, beside Ray's sockets (the same short
    path, the same owner-only data directory above it): only the platform's user can connect. A TCP
    port, even on loopback, would let any local user launch runs through it."""
    return ray_temp_dir(data_dir) / "dagster-code.sock"


def unlink_ray_temp_link(data_dir: Path) -> None:
    """Drop the /tmp link when it is ours and points here; Ray's files stay in the data dir."""
    link = ray_temp_link(data_dir)
    try:
        info = os.lstat(link)
    except OSError:
        return
    if stat.S_ISLNK(info.st_mode) and info.st_uid == os.geteuid() and os.readlink(link) == str(ray_temp_real(data_dir)):
        os.unlink(link)


def remove_ray_temp_dir(data_dir: Path) -> None:
    """The link (see above) and the real directory."""
    import shutil

    unlink_ray_temp_link(data_dir)
    shutil.rmtree(ray_temp_real(data_dir), ignore_errors=True)


def ensure_secret_file(path: Path, nbytes: int = 32) -> None:
    """A random secret (hex) at ``path``, created owner-only when missing; an existing one is kept."""
    import secrets

    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(nbytes))
