"""The Dagster side loads: the one Definitions object resolves with its resources."""

from __future__ import annotations

import dagster as dg


def test_definitions_load_and_resolve(monkeypatch, tmp_path):
    monkeypatch.setenv("MLSERVICE_DATA_DIR", str(tmp_path))
    from pipelines.definitions import build_definitions

    defs = build_definitions()
    dg.Definitions.validate_loadable(defs)
    repository = defs.get_repository_def()
    assert {"state", "registry", "data_access"} <= set(repository.get_top_level_resources())
    for job in repository.get_all_jobs():
        assert job.name  # every job resolves (asset jobs included)
    registry = defs.resources["registry"]
    assert registry.tracking_uri.endswith(str(tmp_path / "mlflow" / "mlflow.db"))
