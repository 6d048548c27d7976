"""Versions older than the artifact records: not loaded until `mlservice verify-artifacts`
inspects them with the registration rules; what fails those rules stays unloadable."""

from __future__ import annotations

import mlflow
from fastapi.testclient import TestClient

from resources.models.artifact_backfill import backfill_artifact_records
from serving_api.main import create_app
from tests.conftest import make_settings
from tests.utils import hostile_models as hostile
from tests.utils.mlflow_models import log_sklearn_model
from tests.utils.tokens import auth, make_token

ROW = {"total_orders": 12, "days_since_last_order": 40, "avg_order_value": 80.5, "support_tickets": 1}


def test_backfill_records_what_passes_and_leaves_the_rest_unloadable(tmp_path):
    (tmp_path / "mlflow").mkdir()
    settings = make_settings(tmp_path, negative_cache_s=0)  # a refused load is asked again at once
    headers = auth(make_token("acme"))
    with TestClient(create_app(settings)) as client:
        model_id = client.post("/api/v1/models", json={"name": "old"}, headers=headers).json()["model_id"]
        ml = mlflow.MlflowClient(settings.effective_tracking_uri)
        good, evil = log_sklearn_model(settings, "acme"), hostile.log_loader_module(settings, "acme")
        for run_id, semver in ((good, "1.0.0"), (evil, "2.0.0")):  # as a registry without records holds them
            ml.create_model_version("acme.old", hostile.logged_model_dir(settings, run_id).as_uri(), run_id=run_id,
                                    tags={"mlservice.semver": semver, "mlservice.stage": "development"})

        def predict(version):
            return client.post("/api/v1/predictions", json={"model_id": model_id, "version": version, "features": ROW},
                               headers=headers)

        assert predict("1.0.0").json()["error"]["code"] == "MODEL_NOT_VERIFIED"
        report = backfill_artifact_records(client.app.state.registry)
        assert report.recorded == ["acme.old v1"]
        assert list(report.refused) == ["acme.old v2"] and "code" in report.refused["acme.old v2"]
        assert predict("1.0.0").status_code == 200
        assert predict("2.0.0").json()["error"]["code"] == "MODEL_NOT_VERIFIED"
        again = backfill_artifact_records(client.app.state.registry)
        assert again.recorded == [] and again.already == 1
