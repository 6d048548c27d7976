"""A model version loaded for serving: its predict function, feature schema and classes.

scikit-learn models are read by skops with the platform's fixed trusted types, so probabilities
and the estimator itself (for explanations) are at hand; the platform's torch MLP is rebuilt from
its weights (class probabilities). Nothing the artifact names is executed, and its files must
match the digest recorded at registration. Tree ensembles are switched to ``n_jobs=1``: serving
parallelism comes from batching concurrent requests, not from thread fan-out per call.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import pandas as pd

from resources.registry import T_FEATURE_SERVICE

if TYPE_CHECKING:
    from resources.registry import ModelRegistry

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


def _outputs_predictor(outputs_fn: Callable, model_type: str, classes: list) -> Callable:
    """For models that answer class probabilities (classifiers) or values: the platform's torch MLP."""
    def predict(frame: pd.DataFrame):
        output = np.asarray(outputs_fn(frame), dtype=float)
        if model_type == "classification" and output.ndim == 2:
            labels = np.asarray(classes) if len(classes) == output.shape[1] else np.arange(output.shape[1])
            return labels[output.argmax(axis=1)], output
        return output.reshape(-1), None

    return predict


def load_model_version(
    *, registry: "ModelRegistry", mlflow_name: str, mlflow_version: int, tenant_id: str, model_id: str, name: str,
    version: str, model_type: str, framework: str,
) -> LoadedModel:
    """Download one registered version, verify its files against the digest recorded at
    registration, and load it with the platform's own code (blocking: call it off the event loop).

    No code chosen by the artifact runs: scikit-learn models are read by skops with the fixed
    trusted types, torch models are rebuilt from their weights (``resources.artifact_check``).
    """
    import mlflow
    from mlflow.models import Model

    from resources.artifact_check import SKLEARN_SKOPS, STATE_DIR, load_sklearn, verify_files
    from resources.errors import DomainError, ModelArtifactChanged, ModelNotVerified
    from resources.torch_mlp import load_predictor
    from serving_api.inference.fast_paths import matrix_predictor
    from serving_api.inference.validation import is_numeric

    where = {"model_id": model_id, "version": version}
    record = registry.artifacts.get(mlflow_name, mlflow_version)
    if record is None or (record.tenant_id, record.model_id) != (tenant_id, model_id):
        raise ModelNotVerified(
            f"version {version} has no record of its artifact (it was not registered through the platform); "
            "register it again, or run `mlservice verify-artifacts` for versions older than the records", where,
        )
    with registry._mlflow_errors():
        registered = registry.client.get_model_version(mlflow_name, str(mlflow_version))
    feature_service = registered.tags.get(T_FEATURE_SERVICE) or None
    workdir = tempfile.mkdtemp(prefix="mlservice-model-")
    try:
        with registry._mlflow_errors():
            local = Path(mlflow.artifacts.download_artifacts(
                artifact_uri=registered.source, dst_path=workdir, tracking_uri=registry.tracking_uri))
        changed = verify_files(local, record.files)
        if changed:
            raise ModelArtifactChanged(
                f"the files of version {version} changed after it was registered; it is not loaded", {**where, "files": changed[:20]},
            )
        try:
            background = Model.load(str(local)).load_input_example(str(local))
        except Exception:  # noqa: BLE001 - an example is optional
            background = None
        estimator = None
        try:
            if record.kind == SKLEARN_SKOPS:
                estimator = load_sklearn(local)
                _single_threaded(estimator)
                classes = list(getattr(estimator, "classes_", []))
                predict_fn = _sklearn_predictor(estimator, model_type)
            else:
                outputs_fn, info = load_predictor(local / STATE_DIR)
                classes = list(info["classes"])
                predict_fn = _outputs_predictor(outputs_fn, model_type, classes)
        except DomainError as exc:  # passed at registration, refused now: the platform's trust changed
            raise ModelNotVerified(f"version {version} no longer passes the artifact checks: {exc.message}", where) from None
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    features = [FeatureSpec(name=f["name"], type=f["type"]) for f in record.features]
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
