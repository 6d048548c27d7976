"""Feast configuration of one tenant: project name, online store, the ``feature_store.yaml``.

Layout under the platform's data directory:
- ``feast/<tenant>/``: the tenant's Feast repository: ``feature_store.yaml`` (written for people
  using the Feast CLI, e.g. ``feast -c <dir> feature-views list``), ``registry.db`` and, with the
  SQLite online store, ``online_store.db``;
- ``tenants/<tenant>/features/``: the tenant's source parquet files (``customer_features.parquet``,
  ``order_features.parquet``), inside the tenant's data area.

Online stores (``online_store`` of ``FeatureStoreResource``):
- ``sqlite`` (default): one file per tenant, nothing to run;
- ``redis``: ``online_store_url`` is Feast's connection string (``host:port[,password=..][,ssl=true]``)
  or ``redis://[:password@]host:port[/db]``; needs ``pip install 'feast[redis]'``;
- ``postgres``: ``online_store_url`` is ``postgresql://user:password@host:port/database[?sslmode=..&schema=..]``;
  needs ``pip install 'feast[postgres]'``.
Redis and PostgreSQL are shared by all tenants: each tenant's Feast project name (its keys and
table prefixes) is unique, derived from the tenant id plus a hash of it.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

OnlineStoreKind = Literal["sqlite", "redis", "postgres"]
REDACTED = "REDACTED"  # the secret stays in the platform's online store URL


def project_name(tenant_id: str) -> str:
    """A Feast project name for a tenant: letters, digits and '_' only (SQLite table names), and
    distinct for distinct tenant ids (a hash suffix tells 'a-b' from 'a_b' and 'A' from 'a')."""
    readable = re.sub(r"[^a-z0-9]+", "_", tenant_id.lower()).strip("_") or "tenant"
    return f"{readable[:40]}_{hashlib.sha256(tenant_id.encode()).hexdigest()[:8]}"


def _redis_connection_string(url: str) -> str:
    if not url.startswith(("redis://", "rediss://")):
        return url  # already Feast's "host:port,param=value" form
    parts = urlsplit(url)
    params = [f"{parts.hostname or 'localhost'}:{parts.port or 6379}"]
    if parts.password:
        params.append(f"password={unquote(parts.password)}")
    if parts.path.strip("/"):
        params.append(f"db={parts.path.strip('/')}")
    if parts.scheme == "rediss":
        params.append("ssl=true")
    return ",".join(params)


def _postgres_options(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql", "postgresql+psycopg") or not parts.hostname:
        raise ValueError("the postgres online store needs online_store_url postgresql://user:password@host:port/database")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    options: dict[str, Any] = {
        "type": "postgres", "host": parts.hostname, "port": parts.port or 5432,
        "database": parts.path.strip("/") or "feast", "user": unquote(parts.username or "postgres"),
        "password": unquote(parts.password or ""),
    }
    if "sslmode" in query:
        options["sslmode"] = query["sslmode"]
    if "schema" in query:
        options["db_schema"] = query["schema"]
    return options


def online_store_options(kind: OnlineStoreKind, url: str | None, repo_dir: Path) -> dict[str, Any]:
    if kind == "sqlite":
        return {"type": "sqlite", "path": str(repo_dir / "online_store.db")}
    if not url:
        raise ValueError(f"the {kind} online store needs online_store_url")
    if kind == "redis":
        return {"type": "redis", "connection_string": _redis_connection_string(url)}
    if kind == "postgres":
        return _postgres_options(url)
    raise ValueError(f"unknown online store '{kind}' (sqlite, redis or postgres)")


def repo_config_options(
    tenant_id: str, repo_dir: Path, kind: OnlineStoreKind = "sqlite", url: str | None = None, registry_cache_ttl_s: int = 60,
) -> dict[str, Any]:
    """What ``feast.RepoConfig(**options)`` takes (and ``feature_store.yaml`` holds)."""
    return {
        "project": project_name(tenant_id),
        "provider": "local",
        "registry": {"registry_type": "file", "path": str(repo_dir / "registry.db"), "cache_ttl_seconds": registry_cache_ttl_s},
        "online_store": online_store_options(kind, url, repo_dir),
        "offline_store": {"type": "file"},
        "entity_key_serialization_version": 3,
        "auth": {"type": "no_auth"},
    }


def feature_store_yaml(options: dict[str, Any]) -> str:
    """The YAML of ``options`` with secrets redacted (the platform never reads this file back)."""
    import yaml

    shown = {**options, "online_store": dict(options["online_store"])}
    store = shown["online_store"]
    if store.get("password"):
        store["password"] = REDACTED
    if store.get("type") == "redis" and "password=" in store.get("connection_string", ""):
        store["connection_string"] = re.sub(r"password=[^,]*", f"password={REDACTED}", store["connection_string"])
    header = "# Written by mlservice (resources/features/store.py) for the Feast CLI: feast -c <this folder> ...\n"
    return header + yaml.safe_dump(shown, sort_keys=False)
