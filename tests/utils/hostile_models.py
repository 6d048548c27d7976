"""Model artifacts an attacker would log to MLflow, in a tenant's experiment with the tenant's tag.

Each one, if the platform let the artifact decide how it is loaded, would run code that writes a
marker file (``MARKER_ENV`` names it): a pyfunc ``loader_module`` with a bundled ``code/``
folder, a pickled ``python_model``, a models-from-code file, a cloudpickled scikit-learn model,
or a skops file holding a function that skops would call on load if it were trusted.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import mlflow
import pandas as pd

from mlservice.config.settings import Settings
from mlservice.config.wiring import build_registry, build_state_store
from tests.utils.mlflow_models import FEATURES, churn_like

MARKER_ENV = "MLSERVICE_TEST_MARKER"
_PAYLOAD = (
    "import os, pathlib\n"
    f"pathlib.Path(os.environ['{MARKER_ENV}']).write_text('code from the artifact ran')\n"
)


def _run(settings: Settings, tenant_id: str):
    registry = build_registry(settings, build_state_store(settings))
    experiment_id = registry.ensure_experiment(tenant_id, "attacks")
    mlflow.set_tracking_uri(settings.effective_tracking_uri)
    return mlflow.start_run(experiment_id=experiment_id, tags={"mlservice.tenant": tenant_id})


def _signature():
    frame, labels = churn_like(n=20)
    return mlflow.models.infer_signature(frame, labels), frame


def log_loader_module(settings: Settings, tenant_id: str) -> str:
    """A pyfunc whose MLmodel names ``loader_module: evil_loader`` shipped in ``code/``."""
    signature, _ = _signature()
    with tempfile.TemporaryDirectory() as folder, _run(settings, tenant_id) as run:
        code_dir = Path(folder)
        (code_dir / "evil_loader.py").write_text(_PAYLOAD + "def _load_pyfunc(path):\n    return None\n")
        data = code_dir / "data.txt"
        data.write_text("x")
        mlflow.pyfunc.log_model(name="model", loader_module="evil_loader", data_path=str(data),
                                code_paths=[str(code_dir / "evil_loader.py")], signature=signature,
                                pip_requirements=["pandas"])
    return run.info.run_id


class Evil(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        Path(os.environ[MARKER_ENV]).write_text("code from the artifact ran")

    def predict(self, context, model_input, params=None):
        return model_input


def log_pickled_python_model(settings: Settings, tenant_id: str) -> str:
    signature, _ = _signature()
    with _run(settings, tenant_id) as run:
        mlflow.pyfunc.log_model(name="model", python_model=Evil(), signature=signature, pip_requirements=["pandas"])
    return run.info.run_id


def log_models_from_code(settings: Settings, tenant_id: str) -> str:
    signature, _ = _signature()
    with tempfile.TemporaryDirectory() as folder, _run(settings, tenant_id) as run:
        source = Path(folder) / "model_code.py"
        source.write_text(_PAYLOAD + "import mlflow\nclass M(mlflow.pyfunc.PythonModel):\n"
                          "    def predict(self, context, model_input, params=None):\n        return model_input\n"
                          "mlflow.models.set_model(M())\n")
        mlflow.pyfunc.log_model(name="model", python_model=str(source), signature=signature, pip_requirements=["pandas"])
    return run.info.run_id


def log_cloudpickled_sklearn(settings: Settings, tenant_id: str) -> str:
    from sklearn.linear_model import LogisticRegression

    signature, frame = _signature()
    _, labels = churn_like(n=20)
    model = LogisticRegression(max_iter=500).fit(frame, labels)
    with _run(settings, tenant_id) as run:
        mlflow.sklearn.log_model(model, name="model", serialization_format="cloudpickle", signature=signature,
                                 pip_requirements=["scikit-learn"])
    return run.info.run_id


def log_skops_with_function(settings: Settings, tenant_id: str) -> str:
    """A scikit-learn pipeline whose FunctionTransformer holds ``os.system``; the artifact's own
    MLmodel lists it among its skops trusted types."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    signature, frame = _signature()
    _, labels = churn_like(n=20)
    import skops.io

    fitted = LogisticRegression(max_iter=500).fit(frame, labels)
    model = Pipeline([("f", FunctionTransformer(func=os.system)), ("lr", fitted)])

    with _run(settings, tenant_id) as run:
        mlflow.sklearn.log_model(model, name="model", signature=signature, pip_requirements=["scikit-learn"],
                                 skops_trusted_types=skops.io.get_untrusted_types(data=skops.io.dumps(model)))
    return run.info.run_id


def local_path(uri: str) -> Path:
    """The local directory of a file:// artifact location (the tests' artifact store)."""
    assert uri.startswith("file://"), uri
    return Path(uri[len("file://"):])


def logged_model_dir(settings: Settings, run_id: str) -> Path:
    """The local folder of the model a run logged (MLflow 3 keeps it under the experiment)."""
    client = mlflow.MlflowClient(settings.effective_tracking_uri)
    run = client.get_run(run_id)
    logged = client.search_logged_models(experiment_ids=[run.info.experiment_id],
                                         filter_string=f"source_run_id = '{run_id}'", max_results=1)
    return local_path(logged[0].artifact_location)


def churn_frame() -> pd.DataFrame:
    return churn_like(n=5)[0][FEATURES]


def log_platform_torch_model(settings: Settings, tenant_id: str, *, tamper=None) -> str:
    """The platform's own torch MLP (fitted weights not needed: a fresh network), logged as
    training logs it; ``tamper(model_dir)`` may then change its files in the artifact store."""
    from assets.training.torch_model import TorchModelState, log_torch_model
    from resources.models.torch_mlp import build_module

    arch = {"n_features": len(FEATURES), "hidden": [8], "n_outputs": 2, "dropout": 0.0, "task": "classification",
            "target_mean": 0.0, "target_std": 1.0}
    state = TorchModelState(build_module(arch).state_dict(), arch, list(FEATURES), [0, 1],
                            [10.0, 100.0, 150.0, 3.0], [10.0, 60.0, 80.0, 2.0])
    frame = churn_frame().astype(float)
    with _run(settings, tenant_id) as run:
        log_torch_model(state, signature=mlflow.models.infer_signature(frame, state.predict_proba(frame)),
                        input_example=frame)
    if tamper is not None:
        tamper(logged_model_dir(settings, run.info.run_id))
    return run.info.run_id
