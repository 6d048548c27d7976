"""Where a tenant's jobs may read and write data: the one check every job type uses.

Rules:
- a relative path resolves under ``<data_dir>/tenants/<tenant_id>/``;
- an absolute path or ``file://`` URI only under one of ``data_roots``;
- ``s3://bucket/key`` only in one of ``s3_buckets`` (every tenant) or of the caller's own entries
  in ``s3_tenant_buckets`` (tenant id -> entries: grants to that tenant alone).
Entries of ``data_roots``, ``s3_buckets`` and ``s3_tenant_buckets`` may contain ``{tenant}``,
replaced by the caller's tenant id, to give each tenant its own prefix (e.g. ``/srv/data/{tenant}``
or ``lake/{tenant}``; a bare ``bucket`` allows the whole bucket). Anything else, ``..`` segments,
other schemes, and symlinks that leave the allowed area are refused with ``InvalidRequest``.
Files are opened through ``resources.data.storage`` (one filesystem for local paths and S3).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

import dagster as dg

from resources.errors import InvalidRequest
from resources.tenants.ids import validate_tenant


@dataclass(frozen=True)
class DataLocation:
    """A checked location: ``uri`` is what readers open (a local path or an s3:// URI)."""

    uri: str
    scheme: str  # "file" or "s3"
    path: str  # local absolute path, or "bucket/key"

    @property
    def is_s3(self) -> bool:
        return self.scheme == "s3"


def _refuse(uri: str, why: str) -> InvalidRequest:
    return InvalidRequest(f"data path not allowed: {why}", {"path": uri})


def _has_dotdot(path: str) -> bool:
    return any(part == ".." for part in PurePosixPath(path).parts)


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


class DataAccessPolicy(dg.ConfigurableResource):
    data_dir: str
    data_roots: list[str] = []  # noqa: RUF012 (pydantic copies field defaults per instance)
    s3_buckets: list[str] = []  # noqa: RUF012
    s3_tenant_buckets: dict[str, list[str]] = {}  # noqa: RUF012 (tenant id -> its own entries)
    s3_endpoint_url: str | None = None

    def tenant_area(self, tenant_id: str) -> Path:
        return Path(self.data_dir).resolve() / "tenants" / validate_tenant(tenant_id)

    def resolve(self, tenant_id: str, uri: str) -> DataLocation:
        validate_tenant(tenant_id)
        if not isinstance(uri, str) or not uri.strip():
            raise _refuse(str(uri), "empty path")
        if "\x00" in uri:
            raise _refuse(uri, "NUL byte")
        parts = urlsplit(uri)
        scheme = parts.scheme.lower()
        if scheme == "s3":
            return self._resolve_s3(tenant_id, uri, parts.netloc, unquote(parts.path))
        if scheme == "file":
            if parts.netloc not in ("", "localhost"):
                raise _refuse(uri, "file:// URIs name no host")
            return self._resolve_local(tenant_id, uri, unquote(parts.path), relative_ok=False)
        if scheme and len(scheme) > 1:  # "c:" style drive letters are not a thing here
            raise _refuse(uri, f"scheme '{scheme}' is not supported (use a relative path, file:// or s3://)")
        return self._resolve_local(tenant_id, uri, uri, relative_ok=True)

    def _resolve_local(self, tenant_id: str, uri: str, path: str, *, relative_ok: bool) -> DataLocation:
        if _has_dotdot(path):
            raise _refuse(uri, "'..' segments are not allowed")
        if os.path.isabs(path):
            roots = [Path(r.replace("{tenant}", tenant_id)).resolve() for r in self.data_roots]
            candidate = Path(path).resolve()
            if not any(_within(candidate, root) for root in roots):
                raise _refuse(uri, "absolute paths must lie under a configured data root")
        else:
            if not relative_ok:
                raise _refuse(uri, "file:// URIs must be absolute")
            root = self.tenant_area(tenant_id)
            candidate = (root / path).resolve()  # resolve() follows symlinks: a link out is caught
            if not _within(candidate, root):
                raise _refuse(uri, "path leaves the tenant's data area")
        return DataLocation(uri=str(candidate), scheme="file", path=str(candidate))

    def _resolve_s3(self, tenant_id: str, uri: str, bucket: str, key: str) -> DataLocation:
        key = key.lstrip("/")
        if not bucket or not key:
            raise _refuse(uri, "s3 URIs need a bucket and a key")
        if _has_dotdot(key) or "//" in key:
            raise _refuse(uri, "'..' or empty segments are not allowed in s3 keys")
        for entry in [*self.s3_buckets, *self.s3_tenant_buckets.get(tenant_id, [])]:
            allowed_bucket, _, prefix = entry.replace("{tenant}", tenant_id).partition("/")
            if allowed_bucket != bucket:
                continue
            prefix = prefix.strip("/")
            if not prefix or key == prefix or key.startswith(prefix + "/"):
                return DataLocation(uri=f"s3://{bucket}/{key}", scheme="s3", path=f"{bucket}/{key}")
        raise _refuse(uri, f"bucket '{bucket}' (or this prefix) is not granted to this tenant "
                           "(MLSERVICE_S3_BUCKETS, MLSERVICE_S3_TENANT_BUCKETS)")
