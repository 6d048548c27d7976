"""The reference sample of a version: the data its drift is measured against.

A version trained by the platform carries its own: the training job logs a seeded sample of the
training features (at most ``REFERENCE_MAX_ROWS`` rows) as the run artifact
``monitoring/reference.parquet`` (``log_reference``), so the reference is tied to the run, and
through it to the version. ``training_reference`` reads it back for a resolved version; a version
whose run has none (registered from elsewhere) has no reference until one is set.

The file is data, never code: it is read with pyarrow, only when it is at most
``REFERENCE_MAX_BYTES``, and only the version's signature columns are used.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from resources.vocabulary import REFERENCE_ARTIFACT_DIR, REFERENCE_ARTIFACT_FILE

if TYPE_CHECKING:
    import pandas as pd

    from resources.registry import ModelRegistry, ResolvedVersion

REFERENCE_MAX_ROWS = 10_000  # enough for KS to see a 0.05-std shift; small enough to read in milliseconds
REFERENCE_SEED = 0
REFERENCE_MAX_BYTES = 64 * 1024 * 1024


def sample_reference(frame: pd.DataFrame, *, max_rows: int = REFERENCE_MAX_ROWS, seed: int = REFERENCE_SEED) -> pd.DataFrame:
    """At most ``max_rows`` rows of ``frame`` drawn without replacement (seeded: the same training
    data gives the same reference), index reset."""
    if len(frame) > max_rows:
        frame = frame.sample(n=max_rows, random_state=seed)
    return frame.reset_index(drop=True)


def log_reference(features: pd.DataFrame) -> None:
    """Log a sample of the training features as the active MLflow run's reference artifact."""
    import mlflow

    with tempfile.TemporaryDirectory(prefix="mlservice-reference-") as folder:
        path = Path(folder) / REFERENCE_ARTIFACT_FILE
        sample_reference(features).to_parquet(path, index=False)
        mlflow.log_artifact(str(path), artifact_path=REFERENCE_ARTIFACT_DIR)


def training_reference(registry: ModelRegistry, resolved: ResolvedVersion) -> pd.DataFrame | None:
    """The reference the version's training run logged, or None when the run has none (blocking)."""
    import pyarrow.parquet as pq
    from mlflow.exceptions import MlflowException

    from resources.errors import InvalidRequest

    with registry._mlflow_errors():
        run_id = registry.client.get_model_version(resolved.mlflow_name, str(resolved.mlflow_version)).run_id
        if not run_id:
            return None
        listed = {f.path: f for f in registry.client.list_artifacts(run_id, REFERENCE_ARTIFACT_DIR)}
    entry = listed.get(f"{REFERENCE_ARTIFACT_DIR}/{REFERENCE_ARTIFACT_FILE}")
    if entry is None or entry.is_dir:
        return None
    if entry.file_size is not None and entry.file_size > REFERENCE_MAX_BYTES:
        raise InvalidRequest(f"the reference sample of version {resolved.version} is larger than {REFERENCE_MAX_BYTES} bytes")
    with tempfile.TemporaryDirectory(prefix="mlservice-reference-") as folder:
        try:
            with registry._mlflow_errors():
                local = Path(registry.client.download_artifacts(run_id, entry.path, folder))
        except MlflowException:
            return None
        if local.is_symlink() or not local.is_file() or local.stat().st_size > REFERENCE_MAX_BYTES:
            return None
        return pq.read_table(local).to_pandas()
