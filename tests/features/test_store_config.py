"""The per-tenant Feast configuration for each online store kind (only SQLite runs here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from resources.errors import DependencyUnavailable
from resources.features.feast_config import REDACTED, feature_store_yaml, project_name, repo_config_options
from resources.features.store import FeatureStoreResource

REPO = Path("/data/feast/acme-corp")


def test_sqlite_default():
    options = repo_config_options("acme-corp", REPO)
    assert options["project"] == project_name("acme-corp") and options["project"].startswith("acme_corp_")
    assert options["online_store"] == {"type": "sqlite", "path": "/data/feast/acme-corp/online_store.db"}
    assert options["registry"]["path"] == "/data/feast/acme-corp/registry.db"
    assert options["offline_store"] == {"type": "file"} and options["provider"] == "local"


@pytest.mark.parametrize("url, expected", [
    ("localhost:6379", "localhost:6379"),
    ("redis://:s3cret@cache.internal:6380/2", "cache.internal:6380,password=s3cret,db=2"),
    ("rediss://cache:6379", "cache:6379,ssl=true"),
])
def test_redis(url, expected):
    options = repo_config_options("acme-corp", REPO, "redis", url)
    assert options["online_store"] == {"type": "redis", "connection_string": expected}


def test_postgres_and_redacted_yaml():
    options = repo_config_options("acme-corp", REPO, "postgres",
                                  "postgresql://feast:pw%21@db.internal:5433/features?sslmode=disable&schema=online")
    assert options["online_store"] == {"type": "postgres", "host": "db.internal", "port": 5433, "database": "features",
                                       "user": "feast", "password": "pw!", "sslmode": "disable", "db_schema": "online"}
    text = feature_store_yaml(options)
    assert "pw!" not in text and REDACTED in text
    with pytest.raises(ValueError):
        repo_config_options("acme-corp", REPO, "postgres", None)


def test_redis_without_the_extra_is_a_clear_503(tmp_path, monkeypatch):
    """A deployment without the redis client (the scale extra not installed): simulated by making
    ``import redis`` fail and Feast's Redis store import again."""
    import sys

    monkeypatch.setitem(sys.modules, "redis", None)  # a None entry: `import redis` raises ImportError
    monkeypatch.delitem(sys.modules, "feast.infra.online_stores.redis", raising=False)
    (tmp_path / "feast" / "acme-corp").mkdir(parents=True)
    (tmp_path / "feast" / "acme-corp" / "registry.db").write_bytes(b"")
    store = FeatureStoreResource(data_dir=str(tmp_path), online_store="redis", online_store_url="localhost:6379")
    with pytest.raises(DependencyUnavailable) as err:
        store.store("acme-corp")
    assert "feast[redis]" in err.value.message
