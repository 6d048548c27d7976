"""The parts of batch scoring that need no cluster: the actor pool's size from the cluster's CPUs,
the columnar checks (the online API's rules per column: null, NaN/infinity, fractions for integer
features, the model's range; schema problems), and the ordered part writer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from assets.scoring.pipeline import IO_RESERVE_CPUS, PartWriter, pool_plan
from mlservice.inference.batch_inputs import check_batch, schema_problems
from mlservice.inference.loaded_model import LoadedModel
from mlservice.inference.signature import FeatureSpec
from resources.data.storage import local_filesystem

FEATURES = [FeatureSpec("n", "long"), FeatureSpec("x", "double")]


MIB = 1 << 20


@pytest.mark.parametrize(("cpus", "input_bytes", "expected"), [
    (2, 40 * MIB, (2, 0.75)),          # this machine: both cores predict, 0.5 CPU left for reads
    (16, 40 * MIB, (8, 1.0)),          # at most 8 actors, one CPU each
    (16, 3 * MIB, (3, 1.0)),           # no more actors than blocks of at least 1 MiB
    (1, 40 * MIB, (1, 0.0)),           # Ray Data's ListFiles task takes the 1 CPU: the actor reserves none
    (1.05, 40 * MIB, (1, 0.05)),       # just room for the smallest actor beside it
    (1.7, 400_000, (1, 0.7)),          # a deployment holds 0.3 CPU: one actor leaves ListFiles its CPU
    (2, 400_000, (1, 1.0)),            # one block: one actor
    (0.5, 40 * MIB, (1, 0.0)),         # a cluster smaller than the reserve still gets an actor
])
def test_the_pool_leaves_cpu_for_the_read_tasks(cpus, input_bytes, expected):
    actors, per_actor = pool_plan(cpus, input_bytes)
    assert (actors, per_actor) == expected
    assert actors * per_actor <= max(cpus - IO_RESERVE_CPUS, 0.05 * actors) + 1e-9


def _model(framework: str = "sklearn") -> LoadedModel:
    def matrix(x):
        return x[:, 0], None

    return LoadedModel(tenant_id="t", model_id="m", name="m", version="1.0.0", mlflow_version=1, model_type="regression",
                       framework=framework, features=FEATURES, classes=[], predict_fn=matrix, estimator=object(),
                       matrix_fn=matrix)


def test_rows_that_do_not_fit_get_reasons_and_the_rest_become_inputs():
    frame = pd.DataFrame({"id": list("abcdef"), "n": [1.0, 2.5, None, 4.0, 5.0, 6.0],
                          "x": [0.1, 0.2, 0.3, np.inf, np.nan, 1e300]})
    checked = check_batch(_model(), frame)
    assert checked.valid.tolist() == [True, False, False, False, False, True]
    assert checked.reasons == ["feature 'n': expected an integer", "feature 'n': is null",
                               "feature 'x': must be finite (no NaN or infinity)", "feature 'x': is null"]
    assert checked.inputs.tolist() == [[1.0, 0.1], [6.0, 1e300]]
    float32 = check_batch(_model(framework="pytorch"), frame.iloc[[0, 5]])  # computes in float32: 1e300 is beyond
    assert float32.valid.tolist() == [True, False] and "out of range" in float32.reasons[0]


def test_columns_no_row_could_fit_are_schema_problems():
    schema = pa.schema([("n", pa.string()), ("other", pa.float64())])
    assert schema_problems(FEATURES, schema) == ["column 'n' is string, the model takes long", "column 'x' (double) is missing"]
    assert schema_problems(FEATURES, pa.schema([("n", pa.int32()), ("x", pa.float32())])) == []


def test_the_part_writer_keeps_order_across_files(tmp_path):
    writer = PartWriter(local_filesystem(), str(tmp_path / "out"), rows_per_file=4)
    tables = [pa.table({"i": pa.array(values, pa.int64())}) for values in ([0, 1, 2], [3, 4, 5], [], [9, 10])]
    for table in tables:  # the empty one is skipped; a file is closed every 4 rows
        writer.write(table)
    writer.close()
    files = sorted((tmp_path / "out").glob("part-*.parquet"))
    assert [f.name for f in files] == ["part-00000.parquet", "part-00001.parquet"]
    assert [pq.read_table(f)["i"].to_pylist() for f in files] == [[0, 1, 2, 3], [4, 5, 9, 10]]


@pytest.mark.parametrize("matrix", [True, False])
def test_the_model_is_called_on_at_most_batch_size_rows_and_answers_as_one_call(matrix):
    from mlservice.inference.batch_inputs import predict_in_calls

    calls: list[int] = []

    def predict(x):
        values = x.to_numpy(dtype=float) if isinstance(x, pd.DataFrame) else x
        calls.append(len(values))
        proba = np.column_stack([1 / (1 + np.exp(values[:, 1])), 1 - 1 / (1 + np.exp(values[:, 1]))])
        return np.where(proba[:, 1] > 0.5, "yes", "no"), proba

    model = _model()
    model.matrix_fn = predict if matrix else None
    model.predict_fn = predict
    rng = np.random.default_rng(3)
    values = np.column_stack([rng.integers(0, 9, 2500), rng.normal(size=2500)]).astype(float)
    inputs = values if matrix else pd.DataFrame(values, columns=["n", "x"])
    labels, proba = predict_in_calls(model, inputs, 1000)
    assert calls == [1000, 1000, 500]
    calls.clear()
    whole_labels, whole_proba = predict_in_calls(model, inputs, 10_000)
    assert calls == [2500]
    assert labels.tolist() == whole_labels.tolist() and np.array_equal(proba, whole_proba)
