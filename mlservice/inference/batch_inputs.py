"""Checking a columnar batch (a DataFrame read from parquet) against a model's signature.

The rules are ``mlservice.inference.validation``'s, applied per column instead of per value, so a row a
batch job scores is a row the online API would take, and the model gets the same numbers: a
float64 matrix in signature order for the verified fast paths, else a DataFrame in the
signature's types. Two levels:

- ``schema_problems``: the columns themselves (missing, or of a type no row of it could fit):
  the whole input is refused, before a job is launched (``check_batch_input``: the paths, the
  input and the output of a batch job, checked alike by the API and the job);
- ``check_batch``: per row (null, NaN or infinity, a fraction for an integer feature, out of the
  model's range): the valid rows become the model's inputs, each invalid row gets its reasons.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlservice.inference.bounds import input_limit
from mlservice.inference.signature import FLOAT_TYPES, INTEGER_TYPES, NUMERIC_TYPES, FeatureSpec
from mlservice.inference.validation import INT64_MAX, INT64_MIN, range_problem

if TYPE_CHECKING:
    import pyarrow as pa

    from mlservice.inference.loaded_model import LoadedModel
    from resources.data.access import DataAccessPolicy, DataLocation


@dataclass
class CheckedBatch:
    inputs: np.ndarray | pd.DataFrame  # the valid rows, as model.batch_predict takes them
    valid: np.ndarray  # bool per input row
    reasons: list[str] = field(default_factory=list)  # one per invalid row, in row order

    @property
    def rejected(self) -> int:
        return int((~self.valid).sum())


def schema_problems(features: list[FeatureSpec], schema: pa.Schema) -> list[str]:
    """What makes every row of an input with this (parquet/arrow) schema unfit for the model."""
    import pyarrow.types as pat

    problems = []
    for spec in features:
        index = schema.get_field_index(spec.name)
        if index < 0:
            problems.append(f"column '{spec.name}' ({spec.type}) is missing")
            continue
        kind = schema.field(index).type
        if spec.type in NUMERIC_TYPES:
            fits = pat.is_integer(kind) or pat.is_floating(kind) or pat.is_null(kind)
        elif spec.type == "boolean":
            fits = pat.is_boolean(kind) or pat.is_null(kind)
        elif spec.type == "string":
            fits = pat.is_string(kind) or pat.is_large_string(kind) or pat.is_null(kind)
        else:
            fits = True
        if not fits:
            problems.append(f"column '{spec.name}' is {kind}, the model takes {spec.type}")
    return problems


@dataclass(frozen=True)
class BatchInput:
    """A batch job's checked paths and input: what the API checks before it launches the job and
    the job checks again when it runs (a person may launch it from the Dagster UI)."""

    source: DataLocation
    target: DataLocation
    files: list[str]  # the input's parquet files, in name order
    rows: int  # from the footers
    bytes: int  # uncompressed, from the footers
    schema: pa.Schema
    keep_columns: list[str]


def check_batch_input(policy: DataAccessPolicy, tenant_id: str, *, input_path: str, output_path: str, overwrite: bool,
                      keep_columns: list[str] | None, features: list[FeatureSpec]) -> BatchInput:
    """Both paths under the data-access policy and apart, the input holding readable parquet whose
    columns fit the signature, ``keep_columns`` present and free of the output's names, the
    output free unless ``overwrite`` (409). 400 ``InvalidRequest`` for the rest (blocking)."""
    from resources.data.staged_output import check_output_location, kept_columns
    from resources.data.storage import parquet_footers
    from resources.errors import InvalidRequest

    source = policy.resolve(tenant_id, input_path)
    target = policy.resolve(tenant_id, output_path)
    if _overlap(source, target):
        raise InvalidRequest("the output path must lie apart from the input path",
                             {"input_path": input_path, "output_path": output_path})
    try:
        footers = parquet_footers(source, policy)
    except FileNotFoundError:
        raise InvalidRequest("the input path holds no parquet file", {"input_path": input_path}) from None
    except (OSError, ValueError) as exc:  # unreachable store, not parquet, a damaged footer
        raise InvalidRequest(f"the input is not readable parquet: {str(exc)[:200]}", {"input_path": input_path}) from None
    problems = schema_problems(features, footers.schema)
    if problems:
        raise InvalidRequest("the input does not fit the model's signature: " + "; ".join(problems[:20]),
                             {"problems": problems[:100]})
    keep = kept_columns(keep_columns, list(footers.schema.names), [f.name for f in features])
    check_output_location(target, policy, overwrite)
    return BatchInput(source, target, footers.files, footers.rows, footers.bytes, footers.schema, keep)


def _overlap(a: DataLocation, b: DataLocation) -> bool:
    if a.scheme != b.scheme:
        return False
    x, y = a.path.rstrip("/"), b.path.rstrip("/")
    return x == y or x.startswith(y + "/") or y.startswith(x + "/")


def check_batch(model: LoadedModel, frame: pd.DataFrame) -> CheckedBatch:
    """The batch's valid rows as the model's inputs, and the reasons of the others."""
    limit = input_limit(model)
    n = len(frame)
    problems: list[tuple[np.ndarray, str]] = []
    columns: dict[str, np.ndarray | pd.Series] = {}
    for spec in model.features:
        if spec.name not in frame.columns:
            problems.append((np.ones(n, dtype=bool), f"feature '{spec.name}': missing"))
            columns[spec.name] = np.zeros(n)
            continue
        values, column_problems = _column(spec, frame[spec.name], limit)
        columns[spec.name] = values
        problems.extend((mask, f"feature '{spec.name}': {why}") for mask, why in column_problems)
    bad = np.zeros(n, dtype=bool)
    for mask, _ in problems:
        bad |= mask
    reasons = []
    if bad.any():
        for row in np.flatnonzero(bad).tolist():
            reasons.append("; ".join(why for mask, why in problems if mask[row]))
    valid = ~bad
    return CheckedBatch(_inputs(model, columns, valid), valid, reasons)


def _column(spec: FeatureSpec, series: pd.Series, limit: float) -> tuple[np.ndarray | pd.Series, list[tuple[np.ndarray, str]]]:
    """The column's values (floats or ints for numbers) and (mask, reason) per kind of problem."""
    missing = series.isna().to_numpy()
    found: list[tuple[np.ndarray, str]] = []
    if spec.type in NUMERIC_TYPES:
        if series.dtype.kind == "b" or not (pd.api.types.is_numeric_dtype(series) or series.isna().all()):
            return np.zeros(len(series)), [(np.ones(len(series), dtype=bool), f"expected a number, got {series.dtype}")]
        if series.dtype.kind == "u" and series.dtype.itemsize == 8:  # uint64 beyond int64 cannot be taken
            found.append(((series.to_numpy() > INT64_MAX), "out of range for a 64-bit integer"))
        numbers = series.to_numpy(dtype=np.float64, na_value=np.nan)
        found.append((missing, "is null"))
        present = ~missing
        finite = np.isfinite(numbers)
        found.append((present & ~finite, "must be finite (no NaN or infinity)"))
        with np.errstate(invalid="ignore"):
            if spec.type in INTEGER_TYPES and series.dtype.kind == "f":
                found.append((finite & (np.floor(numbers) != numbers), "expected an integer"))
                found.append((finite & ((numbers < INT64_MIN) | (numbers > INT64_MAX)), "out of range for a 64-bit integer"))
            found.append((finite & (np.abs(numbers) > limit), range_problem(limit)))
        values: np.ndarray | pd.Series = numbers
        if spec.type in INTEGER_TYPES and series.dtype.kind in "iu" and not missing.any():
            values = series.to_numpy()  # exact integers for a DataFrame input (the matrix casts to float64 anyway)
    elif spec.type == "boolean":
        found.append((missing, "is null"))
        found.append((~missing & ~series.map(lambda v: isinstance(v, bool | np.bool_)).to_numpy(dtype=bool),
                      "expected a boolean"))
        values = series
    else:  # string
        found.append((missing, "is null"))
        found.append((~missing & ~series.map(lambda v: isinstance(v, str)).to_numpy(dtype=bool), "expected a string"))
        values = series
    return values, [(mask, why) for mask, why in found if mask.any()]


def _inputs(model: LoadedModel, columns: dict[str, Any], valid: np.ndarray) -> np.ndarray | pd.DataFrame:
    names = model.feature_names
    if model.matrix_fn is not None:
        if not names:
            return np.empty((int(valid.sum()), 0))
        return np.column_stack([np.asarray(columns[name], dtype=np.float64)[valid] for name in names])
    frame: dict[str, Any] = {}
    for spec in model.features:
        values = columns[spec.name]
        if spec.type in INTEGER_TYPES:
            frame[spec.name] = np.asarray(values)[valid].astype(np.int64)
        elif spec.type in FLOAT_TYPES:
            frame[spec.name] = np.asarray(values, dtype=np.float64)[valid]
        else:
            frame[spec.name] = pd.Series(np.asarray(values, dtype=object)[valid], dtype=object if spec.type == "string" else None)
    return pd.DataFrame(frame, copy=False)


def predict_in_calls(model: LoadedModel, inputs: np.ndarray | pd.DataFrame, rows_per_call: int) -> tuple[np.ndarray, np.ndarray | None]:
    """The model's (labels, probabilities or None) for ``inputs``, at most ``rows_per_call`` rows a
    call (a batch job's ``batch_size``: it bounds the model's working memory, not the answers: every
    predictor here computes each row alone)."""
    n = len(inputs)
    if n <= rows_per_call:
        return model.batch_predict(inputs)
    parts = [model.batch_predict(inputs[start:start + rows_per_call] if isinstance(inputs, np.ndarray)
                                 else inputs.iloc[start:start + rows_per_call]) for start in range(0, n, rows_per_call)]
    labels = np.concatenate([np.asarray(p[0]) for p in parts])
    if parts[0][1] is None:
        return labels, None
    return labels, np.concatenate([np.asarray(p[1], dtype=np.float64) for p in parts])
