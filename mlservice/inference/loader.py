"""A model version loaded for serving: its predict function, feature schema and classes.

scikit-learn models are read by skops with the platform's fixed trusted types, so probabilities
and the estimator itself (for explanations) are at hand; the platform's torch MLP is rebuilt from
its weights (class probabilities). Nothing the artifact names is executed, and its files must
match the digest recorded at registration. Tree ensembles are switched to ``n_jobs=1``: serving
parallelism comes from batching concurrent requests, not from thread fan-out per call.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from mlservice.inference.fast_paths import matrix_predictor
from mlservice.inference.loaded_model import LoadedModel, approx_size
from mlservice.inference.predictors import outputs_predictor, single_threaded, sklearn_predictor
from mlservice.inference.signature import FeatureSpec, is_numeric
from resources.vocabulary import T_FEATURE_SERVICE

if TYPE_CHECKING:
    from resources.models.registry import ModelRegistry, ResolvedVersion

def load_version(registry: ModelRegistry, tenant_id: str, model_id: str, spec: str | None = None) -> LoadedModel:
    """Resolve a version spec on the registry (None: production, else the newest; a stage; a
    semantic version) and load it: what a batch-scoring actor, a Serve replica or a drift report
    calls, in any process that can reach the registry and the platform's database (blocking)."""
    return load_model_version(registry=registry, tenant_id=tenant_id, model_id=model_id,
                              resolved=registry.resolve_version(tenant_id, model_id, spec))


def load_model_version(*, registry: ModelRegistry, tenant_id: str, model_id: str, resolved: ResolvedVersion) -> LoadedModel:
    """Download one resolved version, verify its files against the digest recorded at
    registration, and load it with the platform's own code (blocking: call it off the event loop).

    No code chosen by the artifact runs: scikit-learn models are read by skops with the fixed
    trusted types, torch models are rebuilt from their weights (``resources.models.artifact_check``).
    """
    import mlflow
    from mlflow.models import Model

    from resources.errors import DomainError, ModelArtifactChanged, ModelNotVerified
    from resources.models.artifact_check import SKLEARN_SKOPS, STATE_DIR, load_sklearn, verify_files

    mlflow_name, mlflow_version, version = resolved.mlflow_name, resolved.mlflow_version, resolved.version
    model_type = resolved.model_type
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
        except Exception:
            background = None
        estimator = None
        try:
            if record.kind == SKLEARN_SKOPS:
                estimator = load_sklearn(local)
                single_threaded(estimator)
                classes = list(getattr(estimator, "classes_", []))
                predict_fn = sklearn_predictor(estimator, model_type)
            else:
                from resources.models.torch_mlp import load_predictor  # torch: 2 s of imports, only for torch models

                outputs_fn, info = load_predictor(local / STATE_DIR)
                classes = list(info["classes"])
                predict_fn = outputs_predictor(outputs_fn, model_type, classes)
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
        tenant_id=tenant_id, model_id=model_id, name=resolved.name, version=version, mlflow_version=mlflow_version,
        model_type=model_type, framework=resolved.framework, features=features, classes=classes, predict_fn=predict_fn,
        estimator=estimator, matrix_fn=matrix_fn, background=example, approx_bytes=approx_size(estimator),
        feature_service=feature_service,
    )
