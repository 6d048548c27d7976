"""The Open Inference Protocol's tensors (KServe v2 REST): parsing a request, the rows it claims,
decoding its tensors into feature rows, and encoding the outputs and a model's metadata.

Inputs are one tensor per feature (shape [N] or [N, 1]) or a single [N, F] tensor in the
signature's feature order; outputs ``predict`` ([N]) and, for classifiers, ``predict_proba``
([N, C]).

Tensor data is JSON or the binary tensor data extension (what ``tritonclient``'s
``set_data_from_numpy`` sends by default): the body is a JSON header of
``Inference-Header-Content-Length`` bytes, then each binary input's raw little-endian elements
(``parameters.binary_data_size`` bytes, BYTES as 4-byte length-prefixed strings), in the order of
the inputs. Outputs are answered the same way when the request asks (``binary_data_output``, or
an output's ``binary_data``). Sizes are checked against the shapes and the body before any
element is read.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, ValidationError

from mlservice.inference.signature import FLOAT_TYPES, INTEGER_TYPES
from resources.errors import InvalidRequest
from serving_api.common_schemas import StrictModel
from serving_api.online.facts import ModelFacts
from serving_api.predictions.schemas import MAX_INSTANCES

DATATYPE = {"double": "FP64", "float": "FP32", "long": "INT64", "integer": "INT32", "boolean": "BOOL", "string": "BYTES"}
MAX_ELEMENTS = 1_000_000  # per tensor, JSON or binary
BINARY_DTYPES = {"BOOL": "?", "INT8": "<i1", "INT16": "<i2", "INT32": "<i4", "INT64": "<i8", "UINT8": "<u1",
                 "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8", "FP16": "<f2", "FP32": "<f4", "FP64": "<f8"}


class Tensor(BaseModel):
    name: str = Field(max_length=256)
    shape: list[int] = Field(max_length=2)
    datatype: str = Field(max_length=16)
    data: list[Any] | None = Field(default=None, max_length=MAX_ELEMENTS)  # None: binary (parameters.binary_data_size)
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


# -- the binary tensor data extension ----------------------------------------------------------
def header_length(value: str) -> int:
    try:
        length = int(value)
    except ValueError:
        length = -1
    if length <= 0:
        raise InvalidRequest("Inference-Header-Content-Length must be a positive integer", {"value": value[:32]})
    return length


def parse_binary_request(raw: bytes, length: int) -> InferenceRequest:
    """The JSON header, then each binary input's bytes in input order, every size checked."""
    if length > len(raw):
        raise InvalidRequest("Inference-Header-Content-Length is beyond the body", {"header_length": length, "body_bytes": len(raw)})
    body = parse_request(raw[:length])
    offset = length
    for tensor in body.inputs:
        size = (tensor.parameters or {}).get("binary_data_size")
        if size is None:
            continue
        if not isinstance(size, int) or isinstance(size, bool) or size < 0 or offset + size > len(raw):
            raise InvalidRequest(f"input '{tensor.name}': binary_data_size does not fit the body",
                                 {"input": tensor.name, "binary_data_size": size, "bytes_left": len(raw) - offset})
        tensor.data = _decode(raw[offset:offset + size], tensor)
        offset += size
    if offset != len(raw):
        raise InvalidRequest("the body holds bytes beyond its tensors", {"extra_bytes": len(raw) - offset})
    return body


def check_data(body: InferenceRequest) -> None:
    missing = [t.name for t in body.inputs if t.data is None]
    if missing:
        raise InvalidRequest("every input needs data (JSON) or parameters.binary_data_size (binary extension)",
                             {"inputs": missing})


def _elements(tensor: Tensor) -> int:
    if any(dim < 0 for dim in tensor.shape):
        raise InvalidRequest(f"input '{tensor.name}': shape dimensions must not be negative", {"shape": tensor.shape})
    count = 1
    for dim in tensor.shape:
        count *= dim
    if count > MAX_ELEMENTS:
        raise InvalidRequest(f"input '{tensor.name}' holds more than {MAX_ELEMENTS} elements", {"shape": tensor.shape})
    return count


def _decode(chunk: bytes, tensor: Tensor) -> list[Any]:
    import numpy as np

    count = _elements(tensor)
    if tensor.datatype == "BYTES":
        values, offset = [], 0
        while offset < len(chunk):
            if offset + 4 > len(chunk):
                raise InvalidRequest(f"input '{tensor.name}': a BYTES element is cut short", {"input": tensor.name})
            size = int.from_bytes(chunk[offset:offset + 4], "little")
            if offset + 4 + size > len(chunk):
                raise InvalidRequest(f"input '{tensor.name}': a BYTES element is cut short", {"input": tensor.name})
            try:
                values.append(chunk[offset + 4:offset + 4 + size].decode())
            except UnicodeDecodeError:
                raise InvalidRequest(f"input '{tensor.name}': BYTES elements must be UTF-8 text", {"input": tensor.name}) from None
            offset += 4 + size
    else:
        dtype = BINARY_DTYPES.get(tensor.datatype)
        if dtype is None:
            raise InvalidRequest(f"input '{tensor.name}': unknown datatype '{tensor.datatype}'",
                                 {"allowed": [*BINARY_DTYPES, "BYTES"]})
        itemsize = np.dtype(dtype).itemsize
        if len(chunk) != count * itemsize:
            raise InvalidRequest(f"input '{tensor.name}': {len(chunk)} bytes do not hold shape {tensor.shape} of {tensor.datatype}",
                                 {"input": tensor.name, "bytes": len(chunk), "expected_bytes": count * itemsize})
        values = np.frombuffer(chunk, dtype=dtype).tolist()
    if len(values) != count:
        raise InvalidRequest(f"input '{tensor.name}': {len(values)} elements for shape {tensor.shape}",
                             {"input": tensor.name, "elements": len(values), "shape": tensor.shape})
    return values


def binary_outputs(body: InferenceRequest) -> set[str] | bool:
    """True: every output binary (``binary_data_output``); else the names of the outputs asked binary."""
    if (body.parameters or {}).get("binary_data_output") is True:
        return True
    return {o.name for o in body.outputs or [] if (o.parameters or {}).get("binary_data") is True}


def binary_answer(answer: dict[str, Any], binary: set[str] | bool) -> tuple[bytes, int]:
    """The answer as a JSON header and the binary outputs' bytes after it; the header's length."""
    import numpy as np
    import orjson

    blobs, outputs = [], []
    for output in answer["outputs"]:
        if binary is not True and output["name"] not in binary:
            outputs.append(output)
            continue
        if output["datatype"] == "BYTES":
            blob = b"".join(len(text).to_bytes(4, "little") + text
                            for text in (str(v).encode() for v in output["data"]))
        else:
            blob = np.asarray(output["data"], dtype=BINARY_DTYPES[output["datatype"]]).tobytes()
        blobs.append(blob)
        outputs.append({key: value for key, value in output.items() if key != "data"}
                       | {"parameters": {**(output.get("parameters") or {}), "binary_data_size": len(blob)}})
    header = orjson.dumps({**answer, "outputs": outputs})
    return header + b"".join(blobs), len(header)
