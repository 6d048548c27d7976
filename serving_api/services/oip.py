"""The Open Inference Protocol's tensors (KServe v2 REST, JSON data): parsing a request, the rows
it claims, decoding its tensors into feature rows, and encoding the outputs and a model's metadata.

Inputs are one tensor per feature (shape [N] or [N, 1]) or a single [N, F] tensor in the
signature's feature order; outputs ``predict`` ([N]) and, for classifiers, ``predict_proba``
([N, C]).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, ValidationError

from inference.signature import FLOAT_TYPES, INTEGER_TYPES
from resources.errors import InvalidRequest
from serving_api.online.facts import ModelFacts
from serving_api.schemas.common import StrictModel
from serving_api.schemas.predictions import MAX_INSTANCES

DATATYPE = {"double": "FP64", "float": "FP32", "long": "INT64", "integer": "INT32", "boolean": "BOOL", "string": "BYTES"}


class Tensor(BaseModel):
    name: str = Field(max_length=256)
    shape: list[int] = Field(max_length=2)
    datatype: str = Field(max_length=16)
    data: list[Any] = Field(max_length=1_000_000)
    parameters: dict[str, Any] | None = None


class RequestedOutput(BaseModel):
    name: str
    parameters: dict[str, Any] | None = None


class InferenceRequest(StrictModel):
    id: str | None = Field(default=None, max_length=128)
    parameters: dict[str, Any] | None = None
    inputs: list[Tensor] = Field(min_length=1, max_length=1000)
    outputs: list[RequestedOutput] | None = None


def metadata(facts: ModelFacts) -> dict[str, Any]:
    classes = facts.classes
    inputs = [{"name": f.name, "datatype": DATATYPE.get(f.type, "FP64"), "shape": [-1]} for f in facts.features]
    outputs = [{"name": "predict", "datatype": "BYTES" if classes and isinstance(classes[0], str) else
                ("INT64" if facts.model_type == "classification" else "FP64"), "shape": [-1]}]
    if facts.model_type == "classification":
        outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(classes)]})
    return {"name": facts.name, "versions": [facts.version], "platform": facts.framework, "inputs": inputs, "outputs": outputs}


def claimed_rows(body: InferenceRequest) -> int:
    """Rows the tensors hold, before any model is looked at (the rate charge), within
    ``MAX_INSTANCES`` like ``instances`` (else 400)."""
    def rows(t: Tensor) -> int:
        if len(t.shape) < 2 or t.shape[1] < 1:
            return len(t.data)
        return max(t.shape[0], len(t.data) // t.shape[1])

    n_rows = max(rows(t) for t in body.inputs)
    if not 1 <= n_rows <= MAX_INSTANCES:
        raise InvalidRequest(f"an inference request holds 1 to {MAX_INSTANCES} rows; this one holds {n_rows}",
                             {"rows": n_rows, "max_rows": MAX_INSTANCES})
    return n_rows


def decode_rows(body: InferenceRequest, features) -> list[dict[str, Any]]:
    names = [f.name for f in features]
    by_name = {t.name: t for t in body.inputs}
    if set(by_name) == set(names):
        counts = {len(t.data) for t in body.inputs}
        if len(counts) != 1:
            raise InvalidRequest("every input tensor must hold the same number of rows",
                                 {"inputs": {t.name: len(t.data) for t in body.inputs}})
        rows = [{n: by_name[n].data[i] for n in names} for i in range(counts.pop())]
    elif len(body.inputs) == 1 and len(body.inputs[0].shape) == 2 and body.inputs[0].shape[1] == len(names):
        tensor = body.inputs[0]
        n_rows, width = tensor.shape
        if n_rows * width != len(tensor.data):
            raise InvalidRequest("tensor data does not match its shape", {"shape": tensor.shape, "elements": len(tensor.data)})
        rows = [dict(zip(names, tensor.data[r * width:(r + 1) * width], strict=True)) for r in range(n_rows)]
    else:
        raise InvalidRequest(
            "inputs must be one tensor per feature, or one [N, F] tensor in feature order",
            {"expected_inputs": names, "given": [t.name for t in body.inputs]},
        )
    for row in rows:  # integral floats for integer features, as clients send numpy floats
        for spec in features:
            value = row.get(spec.name)
            if spec.type in INTEGER_TYPES and isinstance(value, float) and value.is_integer():
                row[spec.name] = int(value)
            elif spec.type in FLOAT_TYPES and isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2 ** 1023:
                row[spec.name] = float(value)
    return rows


def parse_request(raw: bytes) -> InferenceRequest:
    try:
        return InferenceRequest.model_validate_json(raw)
    except ValidationError as exc:
        details = [{"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg"), "type": e.get("type")} for e in exc.errors()]
        raise InvalidRequest("request does not match the inference request schema", details) from None


def encode_outputs(wanted: list[str], metadata: dict[str, Any], outcome, n_rows: int) -> list[dict[str, Any]]:
    outputs = []
    for output in wanted:
        if output == "predict":
            outputs.append({"name": "predict", "datatype": metadata["predict"]["datatype"], "shape": [n_rows], "data": outcome.prediction})
        elif output == "predict_proba" and outcome.probabilities is not None:
            width = len(outcome.probabilities[0])
            flat = [p for row in outcome.probabilities for p in row]
            outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": [n_rows, width], "data": flat})
        else:
            raise InvalidRequest(f"unknown output '{output}'", {"outputs": list(metadata)})
    return outputs
