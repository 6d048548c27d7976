"""Per-tenant quotas as the Dagster side sees them: the training assets' registry carries the same
quotas as the API (built from the same settings), and refuses the model past the quota."""

from __future__ import annotations

import json

import pytest

from mlservice.config.settings import Settings
from mlservice.config.wiring import build_quotas
from resources.errors import QuotaExceeded
from resources.models.registry import ModelRegistry
from resources.tenants.quotas import count_up_to


def test_overrides_merge_field_by_field_and_other_tenants_keep_the_defaults(tmp_path):
    settings = Settings(data_dir=tmp_path, quota_overrides={"small": {"models": 1}}, quotas={"ensembles": 7})
    quotas = build_quotas(settings)
    assert quotas.limit("small", "models") == 1
    assert quotas.limit("small", "ensembles") == 7 and quotas.limit("small", "versions_per_model") == 100
    assert quotas.limit("anyone", "models") == 100 and quotas.limit("anyone", "ensembles") == 7


def test_the_dagster_registry_refuses_the_model_past_the_quota(tmp_path, monkeypatch):
    """What the training asset calls when its model does not exist yet (``fit_and_register``)."""
    from pipelines.resources import local_resources

    (tmp_path / "mlflow").mkdir()
    monkeypatch.setenv("MLSERVICE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MLSERVICE_QUOTA_OVERRIDES", json.dumps({"small": {"models": 1}}))
    registry = local_resources()["registry"]
    assert isinstance(registry, ModelRegistry) and registry.quotas.limit("small", "models") == 1
    registry.create_model("small", name="first", model_type="classification", framework="sklearn", actor="job")
    with pytest.raises(QuotaExceeded) as refused:
        registry.create_model("small", name="second", model_type="classification", framework="sklearn", actor="job")
    assert refused.value.details == {"quota": "models", "limit": 1, "held": 1}
    assert [m.name for m in registry.list_models("small")[0]] == ["first"]
    registry.create_model("other", name="second", model_type="classification", framework="sklearn", actor="job")


def test_count_up_to_pages_and_stops_at_the_limit():
    calls = []

    def fetch(size, cursor):
        calls.append((size, cursor))
        start = int(cursor or 0)
        return list(range(start, min(start + size, 2500))), (str(start + size) if start + size < 2500 else None)

    assert count_up_to(fetch, 3000) == 2500 and [c[0] for c in calls] == [1000, 1000, 1000]
    calls.clear()
    assert count_up_to(fetch, 1200) == 1200 and calls == [(1000, None), (200, "1000")]
