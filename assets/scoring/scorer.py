"""The batch scorer: the callable class that Ray Data's ``map_batches`` runs in a pool of actors.

The job loads the version once through the model core (``inference.load_version``: digest
check, skops / torch rebuild, the verified fast predictor) and every actor receives that loaded
model through Ray's object store (no actor talks to MLflow or the platform's database, and none
pays a model load: a fresh process's first load costs seconds of imports and MLflow set-up, its
later ones 0.5 s). Each actor then scores pandas batches:
``inference.batch_inputs.check_batch`` applies the online API's feature rules per column, the
valid rows go to ``model.batch_predict`` (the same predictor as online predictions), and the
output batch holds the kept input columns, ``prediction``, one ``probability_<class>`` per class
for classifiers, and ``model_version``. Rows that do not fit the signature are never predicted:
they are written, with their reasons, to the job's staging ``_rejected/`` folder by the actor
(they are rare; keeping them out of the main dataset keeps one pass over the data), and counted.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from resources.batch_output import MODEL_VERSION, PREDICTION, REASON, output_columns, probability_column


@dataclass(frozen=True)
class ScoringSpec:
    """Everything an actor needs besides the model (picklable: pyarrow filesystems pickle with
    their endpoint and credentials, so actors need no AWS variables of their own)."""

    keep_columns: tuple[str, ...]
    rejected_dir: str  # path of the staging _rejected/ folder on rejected_fs
    rejected_fs: Any  # pyarrow FileSystem


class BatchScorer:
    """Constructed once per actor (takes the job's loaded model from the object store); called once per batch."""

    def __init__(self, spec: ScoringSpec, model: Any, counter: Any = None) -> None:
        """``model``: the LoadedModel (or a Ray ObjectRef of it) the job loaded through the model core."""
        from inference.model import LoadedModel
        from inference.predictors import single_threaded

        if not isinstance(model, LoadedModel):
            import ray

            model = ray.get(model)
        self.spec = spec
        self.counter = counter  # a Ray actor with add(done, rejected), or None
        self.model = model
        if self.model.estimator is not None:
            single_threaded(self.model.estimator)  # one core per actor: the pool is sized in cores
        self.columns = output_columns(list(spec.keep_columns), list(self.model.classes), self.model.model_type)

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        from inference.batch_inputs import check_batch

        checked = check_batch(self.model, batch)
        valid = checked.valid
        out: dict[str, Any] = {name: batch[name].to_numpy()[valid] for name in self.spec.keep_columns}
        if len(checked.inputs):
            predictions, probabilities = self.model.batch_predict(checked.inputs)
        else:
            predictions, probabilities = np.array([]), None
        out[PREDICTION] = np.asarray(predictions)
        if self.model.model_type == "classification":
            proba = np.asarray(probabilities, dtype=np.float64) if probabilities is not None else None
            for index, label in enumerate(self.model.classes):
                out[probability_column(label)] = proba[:, index] if proba is not None else np.full(len(predictions), np.nan)
        out[MODEL_VERSION] = np.full(len(predictions), self.model.version, dtype=object)
        if checked.rejected:
            self._reject(batch.loc[~valid], checked.reasons)
        if self.counter is not None:
            self.counter.add.remote(int(valid.sum()), checked.rejected)
        return pd.DataFrame(out, columns=self.columns)

    def _reject(self, rows: pd.DataFrame, reasons: list[str]) -> None:
        """The batch's rejected rows, with their reasons, as one parquet file under _rejected/."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        from resources.storage import ensure_dir

        fs = self.spec.rejected_fs
        frame = rows.reset_index(drop=True).copy()
        frame[REASON] = reasons
        ensure_dir(fs, self.spec.rejected_dir)
        # named by content: a retry of the job writes the same files
        digest = hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()).hexdigest()[:20]
        path = f"{self.spec.rejected_dir.rstrip('/')}/rejected-{digest}.parquet"
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, filesystem=fs)
