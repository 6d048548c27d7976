"""The batch scorer: the callable class that Ray Data's ``map_batches`` runs in a pool of actors.

The job loads the version once through the model core (``inference.load_version``: digest
check, skops / torch rebuild, the verified fast predictor) and every actor receives that loaded
model through Ray's object store (no actor talks to MLflow or the platform's database, and none
pays a model load: a fresh process's first load costs seconds of imports and MLflow set-up, its
later ones 0.5 s). Each actor then scores whole Ray Data blocks, as Arrow tables: only the feature
columns become pandas,
``mlservice.inference.batch_inputs.check_batch`` applies the online API's feature rules per column, the
valid rows go to ``model.batch_predict`` (the same predictor as online predictions) at most
``rows_per_call`` (the job's ``batch_size``) rows a call, and the
output batch is an Arrow table of the kept input columns (taken from the input's Arrow columns as
they are: no round trip through Python objects), ``prediction``, one ``probability_<class>`` per
class for classifiers, and ``model_version``. Rows that do not fit the signature are never predicted:
they are written, with their reasons, to the job's staging ``_rejected/`` folder by the actor
(they are rare; keeping them out of the main dataset keeps one pass over the data), and counted.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from resources.data.staged_output import MODEL_VERSION, PREDICTION, REASON, output_columns, probability_column

if TYPE_CHECKING:
    import pyarrow as pa


@dataclass(frozen=True)
class ScoringSpec:
    """Everything an actor needs besides the model (picklable: pyarrow filesystems pickle with
    their endpoint and credentials, so actors need no AWS variables of their own)."""

    keep_columns: tuple[str, ...]
    rows_per_call: int  # the job's batch_size: rows per model call
    rejected_dir: str  # path of the staging _rejected/ folder on rejected_fs
    rejected_fs: Any  # pyarrow FileSystem


class BatchScorer:
    """Constructed once per actor (takes the job's loaded model from the object store); called once per batch."""

    def __init__(self, spec: ScoringSpec, model: Any, counter: Any = None) -> None:
        """``model``: the LoadedModel (or a Ray ObjectRef of it) the job loaded through the model core."""
        from mlservice.inference.loaded_model import LoadedModel
        from mlservice.inference.predictors import single_threaded

        if not isinstance(model, LoadedModel):
            import ray

            model = ray.get(model)
        self.spec = spec
        self.counter = counter  # a Ray actor with add(done, rejected), or None
        self.model = model
        if self.model.estimator is not None:
            single_threaded(self.model.estimator)  # one core per actor: the pool is sized in cores
        self.columns = output_columns(list(spec.keep_columns), list(self.model.classes), self.model.model_type)

    def __call__(self, batch: pa.Table) -> pa.Table:
        import pyarrow as pa

        from mlservice.inference.batch_inputs import check_batch, predict_in_calls

        present = [name for name in self.model.feature_names if name in batch.column_names]
        checked = check_batch(self.model, batch.select(present).to_pandas())
        valid = checked.valid
        kept = batch.select(list(self.spec.keep_columns))
        if checked.rejected:
            kept = kept.filter(pa.array(valid))
        out: dict[str, Any] = {name: kept.column(name) for name in self.spec.keep_columns}
        if len(checked.inputs):
            predictions, probabilities = predict_in_calls(self.model, checked.inputs, self.spec.rows_per_call)
        else:
            predictions, probabilities = np.array([]), None
        out[PREDICTION] = pa.array(np.asarray(predictions))
        if self.model.model_type == "classification":
            proba = np.asarray(probabilities, dtype=np.float64) if probabilities is not None else None
            for index, label in enumerate(self.model.classes):
                column = proba[:, index] if proba is not None else np.full(len(predictions), np.nan)
                out[probability_column(label)] = pa.array(column)
        out[MODEL_VERSION] = pa.array([self.model.version] * len(predictions), type=pa.string())
        if checked.rejected:
            self._reject(batch.filter(pa.array(~valid)).to_pandas(), checked.reasons)
        if self.counter is not None:
            self.counter.add.remote(int(valid.sum()), checked.rejected)
        return pa.table({name: out[name] for name in self.columns})

    def _reject(self, rows: pd.DataFrame, reasons: list[str]) -> None:
        """The batch's rejected rows, with their reasons, as one parquet file under _rejected/."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        from resources.data.storage import ensure_dir

        fs = self.spec.rejected_fs
        frame = rows.reset_index(drop=True).copy()
        frame[REASON] = reasons
        ensure_dir(fs, self.spec.rejected_dir)
        # named by content: a retry of the job writes the same files
        digest = hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()).hexdigest()[:20]
        path = f"{self.spec.rejected_dir.rstrip('/')}/rejected-{digest}.parquet"
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, filesystem=fs)
