"""Ground truth ("feedback") for logged predictions: the labels clients send afterwards, keyed like
the prediction log (tenant, request id), so monitoring can score a model on its served traffic.

A label belongs to one prediction-log record of the same tenant and model. Ids without such a
record are reported as unknown, never distinguished from another tenant's or another model's ids.
A label is a JSON scalar for a one-row record, or a list of scalars with one per row. Submitting is
an upsert: a label sent again replaces the stored one.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa

from resources.errors import InvalidRequest
from resources.infra.state_db import StateStore, UTCDateTime, metadata, utcnow
from resources.predictions.log import answered, prediction_log

MAX_FEEDBACK_ITEMS = 1000  # per submit call; also the size of one IN (...) lookup
_INT_LIMIT = 2**63  # labels are read back with orjson, which turns larger integers into floats

prediction_feedback = sa.Table(
    "prediction_feedback",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("request_id", sa.String(128), primary_key=True),
    sa.Column("model_id", sa.String(64), nullable=False),  # the record's model_id when the label was stored
    sa.Column("label", sa.Text, nullable=False),  # JSON: a scalar, or a list of scalars (one per row)
    sa.Column("received_at", UTCDateTime(), nullable=False),
    sa.Index("ix_prediction_feedback_tenant_model", "tenant_id", "model_id"),
)


@dataclass
class FeedbackOutcome:
    """What became of a submission. Each distinct request id is stored, unknown or rejected;
    ``matched`` counts the ids that have a record of this tenant and model (stored + rejected for
    their label)."""

    matched: int = 0
    unknown: list[str] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)  # {"request_id", "reason"}
    stored: int = 0


@dataclass(frozen=True)
class LabelledRow:
    """One predicted row with its ground truth."""

    model_version: str
    prediction: Any
    probabilities: list[float] | None
    label: Any


class FeedbackStore:
    def __init__(self, state: StateStore) -> None:
        self.state = state

    def submit(self, tenant_id: str, model_id: str, items: list[tuple[str, Any]]) -> FeedbackOutcome:
        """Store the labels of ``items`` ((request_id, label) pairs) whose request ids have a
        prediction-log record of ``tenant_id`` and ``model_id``. Within one call the last item for
        an id wins. Raises ``InvalidRequest`` above ``MAX_FEEDBACK_ITEMS`` items."""
        if len(items) > MAX_FEEDBACK_ITEMS:
            raise InvalidRequest(
                f"at most {MAX_FEEDBACK_ITEMS} feedback items per request, got {len(items)}",
                {"max_items": MAX_FEEDBACK_ITEMS, "items": len(items)},
            )
        outcome = FeedbackOutcome()
        labels: dict[str, Any] = {}
        for request_id, label in items:
            if not isinstance(request_id, str) or not request_id:
                outcome.rejected.append({"request_id": str(request_id), "reason": "request_id must be a non-empty string"})
                continue
            labels.pop(request_id, None)  # the last item wins, in its own position
            labels[request_id] = label
        if not labels:
            return outcome
        now = utcnow()
        with self.state.begin() as conn:
            rows = _record_rows(conn, tenant_id, model_id, list(labels))
            stored: list[dict[str, Any]] = []
            for request_id, label in labels.items():
                if request_id not in rows:
                    outcome.unknown.append(request_id)
                    continue
                outcome.matched += 1
                reason = _label_problem(label, rows[request_id])
                if reason is not None:
                    outcome.rejected.append({"request_id": request_id, "reason": reason})
                    continue
                stored.append(dict(tenant_id=tenant_id, request_id=request_id, model_id=model_id,
                                   label=json.dumps(label, separators=(",", ":")), received_at=now))
            if stored:
                _upsert(conn, stored)
        outcome.stored = len(stored)
        return outcome

    def labelled(self, tenant_id: str, model_id: str, start: datetime, end: datetime, *, version: str | None = None,
                 max_rows: int = 200_000) -> list[LabelledRow]:
        """The model's answered records (status 200, ``start <= at < end``, optionally of one
        version) that have feedback, one ``LabelledRow`` per predicted row, newest record first,
        at most ``max_rows`` rows. Records whose outputs cannot be read row by row are skipped."""
        pl, fb = prediction_log, prediction_feedback
        query = (
            sa.select(pl.c.model_version, pl.c.outputs, fb.c.label)
            .select_from(pl.join(fb, sa.and_(fb.c.tenant_id == pl.c.tenant_id, fb.c.request_id == pl.c.request_id)))
            .where(*answered(tenant_id, start, end, model_id=model_id, version=version), fb.c.model_id == model_id)
            .order_by(pl.c.at.desc(), pl.c.id.desc())
        )
        out: list[LabelledRow] = []
        if max_rows <= 0:
            return out
        with self.state.begin() as conn:
            for model_version, outputs, label in conn.execute(query):
                out.extend(_flatten(model_version, outputs, label)[: max_rows - len(out)])
                if len(out) >= max_rows:
                    break
        return out


def _record_rows(conn: sa.Connection, tenant_id: str, model_id: str, request_ids: list[str]) -> dict[str, int | None]:
    """request id -> the number of rows its record answered (None: unreadable), for the ids that
    have a record of this tenant and model. One SELECT per ``MAX_FEEDBACK_ITEMS`` ids."""
    pl = prediction_log
    found: dict[str, int | None] = {}
    for i in range(0, len(request_ids), MAX_FEEDBACK_ITEMS):
        chunk = request_ids[i : i + MAX_FEEDBACK_ITEMS]
        query = sa.select(pl.c.request_id, pl.c.outputs).where(
            pl.c.tenant_id == tenant_id, pl.c.model_id == model_id, pl.c.request_id.in_(chunk)
        )
        for request_id, outputs in conn.execute(query):
            parsed = _outputs(outputs)
            found[request_id] = None if parsed is None else len(parsed["prediction"])
    return found


def _outputs(outputs: str | None) -> dict[str, Any] | None:
    """A record's parsed outputs when they hold per-row predictions; None otherwise (no outputs,
    a truncation marker, another shape)."""
    if outputs is None:
        return None
    try:
        parsed = orjson.loads(outputs)
    except orjson.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) and isinstance(parsed.get("prediction"), list) else None


def _is_scalar(value: Any) -> bool:
    if isinstance(value, bool | str):
        return True
    if isinstance(value, int):
        return -_INT_LIMIT <= value < _INT_LIMIT
    return isinstance(value, float) and math.isfinite(value)


def _label_problem(label: Any, rows: int | None) -> str | None:
    """Why ``label`` cannot be the ground truth of a record of ``rows`` rows (None: it can)."""
    if rows is None:
        return "the prediction record holds no per-row predictions"
    if isinstance(label, list):
        if not all(_is_scalar(v) for v in label):
            return "a label list must hold only strings, finite numbers or booleans"
        if len(label) != rows:
            return f"the prediction answered {rows} row(s); the label list has {len(label)}"
        return None
    if not _is_scalar(label):
        return "a label must be a string, a finite number, a boolean, or a list of them (one per row)"
    if rows != 1:
        return f"the prediction answered {rows} rows; send a list of {rows} labels"
    return None


def _upsert(conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows``, replacing the stored label of a (tenant, request id) already present."""
    table = prediction_feedback
    dialect = conn.dialect.name
    if dialect in ("sqlite", "postgresql"):
        if dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:
            from sqlalchemy.dialects.postgresql import insert
        stmt = insert(table)
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.c.tenant_id, table.c.request_id],
            set_={name: stmt.excluded[name] for name in ("model_id", "label", "received_at")},
        )
        conn.execute(stmt, rows)
        return
    for row in rows:  # any other database: delete then insert, in the caller's transaction
        conn.execute(table.delete().where(table.c.tenant_id == row["tenant_id"], table.c.request_id == row["request_id"]))
    conn.execute(table.insert(), rows)


def _flatten(model_version: str, outputs: str | None, label_json: str) -> list[LabelledRow]:
    """One record's rows with their labels; [] when its outputs and label do not line up."""
    parsed = _outputs(outputs)
    if parsed is None:
        return []
    predictions = parsed["prediction"]
    label = orjson.loads(label_json)
    labels = label if isinstance(label, list) else [label]
    if len(labels) != len(predictions):
        return []
    probabilities = parsed.get("probabilities")
    if not (isinstance(probabilities, list) and len(probabilities) == len(predictions)):
        probabilities = [None] * len(predictions)
    return [
        LabelledRow(model_version, p, q if isinstance(q, list) else None, y)
        for p, q, y in zip(predictions, probabilities, labels, strict=True)
    ]
