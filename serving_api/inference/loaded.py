"""A model version loaded for serving: its predict function, feature schema and classes.

scikit-learn models load through their native flavor (skops, no pickle) so probabilities and
the estimator itself (for explanations) are at hand; other models through pyfunc (the torch MLP
answers class probabilities). Tree ensembles are switched to ``n_jobs=1``: serving parallelism
comes from batching concurrent requests, not from thread fan-out per call.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

from resources.registry import T_FEATURE_SERVICE

INTEGER_TYPES = {"long", "integer"}
FLOAT_TYPES = {"double", "float"}


@dataclass
class FeatureSpec:
    name: str
    type: str  # MLflow column type: double, float, long, integer, boolean, string


@dataclass
class LoadedModel:
    tenant_id: str
    model_id: str
    name: str
    version: str
    mlflow_version: int
    model_type: str
    framework: str
    features: list[FeatureSpec]
    classes: list
    predict_fn: Callable[[pd.DataFrame], tuple[np.ndarray, np.ndarray | None]]
    estimator: Any = None  # the native model when there is one (explanations)
    # a verified predictor on float64 matrices (serving_api.inference.fast_paths), when there is one
    matrix_fn: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]] | None = None
    background: pd.DataFrame | None = None
    approx_bytes: int = 0
    meta: dict[str, Any] = field(default_factory=dict)
    # the Feast feature service the version was trained from (version tag ``mlservice.feature_service``):
    # predictions by entity read its features from the online store
    feature_service: str | None = None

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def predict(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        return self.predict_fn(frame)

    @property
    def batch_predict(self) -> Callable:
        """What the micro-batcher calls: the matrix path when verified, else the DataFrame one."""
        return self.matrix_fn or self.predict_fn


def _single_threaded(estimator: Any) -> None:
    steps = estimator.steps if hasattr(estimator, "steps") else [(None, estimator)]
    for _, step in steps:
        if hasattr(step, "n_jobs"):
            try:
                step.set_params(n_jobs=1)
            except ValueError:
                pass


def _sklearn_predictor(estimator: Any, model_type: str) -> Callable:
    if model_type == "classification" and hasattr(estimator, "predict_proba"):
        classes = np.asarray(estimator.classes_)

        def predict(frame: pd.DataFrame):
            proba = np.asarray(estimator.predict_proba(frame), dtype=float)
            return classes[proba.argmax(axis=1)], proba

        return predict

    def predict_values(frame: pd.DataFrame):
        return np.asarray(estimator.predict(frame)), None

    return predict_values


def _pyfunc_predictor(pyfunc: Any, model_type: str, classes: list) -> Callable:
    def predict(frame: pd.DataFrame):
        output = np.asarray(pyfunc.predict(frame), dtype=float)
        if model_type == "classification" and output.ndim == 2:
            labels = np.asarray(classes) if len(classes) == output.shape[1] else np.arange(output.shape[1])
            return labels[output.argmax(axis=1)], output
        return output.reshape(-1), None

    return predict


def load_model_version(
    *, tracking_uri: str, mlflow_name: str, mlflow_version: int, tenant_id: str, model_id: str, name: str,
    version: str, model_type: str, framework: str,
) -> LoadedModel:
    """Download and load one registered version (blocking: call it off the event loop)."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.models import Model

    from serving_api.inference.fast_paths import matrix_predictor
    from serving_api.inference.validation import is_numeric

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    source = client.get_model_version_download_uri(mlflow_name, str(mlflow_version))
    feature_service = read_feature_service(client, mlflow_name, mlflow_version)
    workdir = tempfile.mkdtemp(prefix="mlservice-model-")
    try:
        local = mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=workdir, tracking_uri=tracking_uri)
        model_meta = Model.load(local)
        features: list[FeatureSpec] = []
        if model_meta.signature is not None and model_meta.signature.inputs is not None:
            for column in model_meta.signature.inputs.inputs:
                features.append(FeatureSpec(name=column.name, type=str(getattr(column.type, "name", column.type))))
        try:
            background = model_meta.load_input_example(local)
        except Exception:  # noqa: BLE001 - an example is optional
            background = None
        estimator = None
        if "sklearn" in model_meta.flavors:
            estimator = mlflow.sklearn.load_model(local)
            _single_threaded(estimator)
            classes = list(getattr(estimator, "classes_", []))
            predict_fn = _sklearn_predictor(estimator, model_type)
        else:
            pyfunc = mlflow.pyfunc.load_model(local)
            classes = list((model_meta.metadata or {}).get("classes", []))
            predict_fn = _pyfunc_predictor(pyfunc, model_type, classes)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if not features and estimator is not None and hasattr(estimator, "feature_names_in_"):
        features = [FeatureSpec(name=str(n), type="double") for n in estimator.feature_names_in_]
    classes = [c.item() if hasattr(c, "item") else c for c in classes]
    example = background if isinstance(background, pd.DataFrame) else None
    matrix_fn = None
    if estimator is not None and is_numeric(features):
        matrix_fn = matrix_predictor(estimator, model_type, predict_fn, [f.name for f in features], example)
    return LoadedModel(
        tenant_id=tenant_id, model_id=model_id, name=name, version=version, mlflow_version=mlflow_version,
        model_type=model_type, framework=framework, features=features, classes=classes, predict_fn=predict_fn,
        estimator=estimator, matrix_fn=matrix_fn, background=example, approx_bytes=_approx_size(estimator),
        feature_service=feature_service,
    )


def read_feature_service(client: Any, mlflow_name: str, mlflow_version: int) -> str | None:
    """The version's ``mlservice.feature_service`` tag (None when it was not trained from one)."""
    return client.get_model_version(mlflow_name, str(mlflow_version)).tags.get(T_FEATURE_SERVICE) or None


def _approx_size(obj: Any) -> int:
    """A rough size for the cache's memory bound (arrays of fitted trees dominate)."""
    if obj is None:
        return 1 << 20
    total, seen, stack = 0, set(), [obj]
    while stack and len(seen) < 200_000:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, np.ndarray):
            total += item.nbytes
            continue
        total += sys.getsizeof(item, 64)
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif hasattr(item, "__dict__"):
            stack.extend(vars(item).values())
        elif hasattr(item, "__getstate__") and type(item).__module__.startswith("sklearn.tree"):
            state = item.__getstate__()
            stack.extend(state.values() if isinstance(state, dict) else [state])
    return total
