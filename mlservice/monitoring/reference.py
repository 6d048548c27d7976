"""The reference sample of a version: the data its drift is measured against.

A version trained by the platform carries its own: the training job logs a seeded sample of the
training features (at most ``REFERENCE_MAX_ROWS`` rows) as the run artifact
``mlservice/monitoring/reference.parquet`` (``log_reference``), so the reference is tied to the run, and
through it to the version. ``training_reference`` reads it back for a resolved version. A
reference set through the API (a parquet file, or a window of the version's traffic; stored by
``resources.monitoring.stored_references``) wins over it: ``version_reference`` picks.

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

    from resources.data.access import DataAccessPolicy, DataLocation
    from resources.infra.state_db import StateStore
    from resources.models.registry import ModelRegistry, ResolvedVersion

REFERENCE_MAX_ROWS = 10_000  # enough for KS to see a 0.05-std shift; small enough to read in milliseconds
REFERENCE_SEED = 0
REFERENCE_MAX_BYTES = 64 * 1024 * 1024
REFERENCE_FILE_MAX_ROWS = 5_000_000  # a file to sample from; the stored sample keeps REFERENCE_MAX_ROWS


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

    run_id = registry.run_id_of(resolved)
    if run_id is None:
        return None
    with registry._mlflow_errors():
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


def version_reference(registry: ModelRegistry, state: StateStore, tenant_id: str, model_id: str,
                      resolved: ResolvedVersion) -> tuple[pd.DataFrame, str, int | None] | None:
    """(frame, source, stored id) of the version's reference: the newest one set through the API
    (source ``path`` or ``traffic``), else the one its training run logged (``training``), else None."""
    import io

    import pyarrow.parquet as pq

    from resources.monitoring.stored_references import ReferenceStore

    stored = ReferenceStore(state).latest(tenant_id, model_id, resolved.version)
    if stored is not None:
        return pq.read_table(io.BytesIO(stored.data)).to_pandas(), stored.source, stored.id
    frame = training_reference(registry, resolved)
    return None if frame is None else (frame, "training", None)


def reference_bytes(frame: pd.DataFrame, features: list[str]) -> tuple[bytes, int]:
    """The sample of ``frame``'s ``features`` columns that is stored, as parquet bytes, and its rows."""
    import io

    sample = sample_reference(frame[features])
    buffer = io.BytesIO()
    sample.to_parquet(buffer, index=False)
    return buffer.getvalue(), len(sample)


def read_reference_file(location: DataLocation, policy: DataAccessPolicy, features: list[str]) -> pd.DataFrame:
    """The ``features`` columns of a parquet file a tenant names as a reference (already checked
    by the data-access policy; local or S3, through ``resources.data.storage``): a regular file of at
    most ``REFERENCE_MAX_BYTES`` whose metadata says at most ``REFERENCE_FILE_MAX_ROWS`` rows and
    every feature (a small compressed file can unpack to far more), read as data, only those columns."""
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    from resources.data.storage import filesystem
    from resources.errors import InvalidRequest

    path = location.uri
    fs, name = filesystem(location, policy)
    try:
        info = fs.get_file_info(name)
    except OSError as exc:  # S3 unreachable, access denied
        raise InvalidRequest(f"the reference file cannot be read: {str(exc)[:200]}", {"path": path}) from None
    if info.type != pafs.FileType.File:
        raise InvalidRequest("the reference file does not exist", {"path": path})
    if info.size > REFERENCE_MAX_BYTES:
        raise InvalidRequest(f"the reference file is larger than {REFERENCE_MAX_BYTES} bytes", {"path": path})
    try:
        with fs.open_input_file(name) as handle:
            parquet = pq.ParquetFile(handle)
            if parquet.metadata.num_rows > REFERENCE_FILE_MAX_ROWS:
                raise InvalidRequest(f"the reference file holds more than {REFERENCE_FILE_MAX_ROWS} rows",
                                     {"path": path, "rows": parquet.metadata.num_rows})
            missing = [column for column in features if column not in parquet.schema_arrow.names]
            if missing:
                raise InvalidRequest(f"the reference file lacks feature(s) of the version: {', '.join(missing)}",
                                     {"missing": missing})
            return parquet.read(columns=features).to_pandas()
    except InvalidRequest:
        raise
    except Exception as exc:  # not parquet, or damaged: the caller's input
        raise InvalidRequest(f"the reference file is not a readable parquet file: {type(exc).__name__}", {"path": path}) from None
