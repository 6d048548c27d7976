"""Feedback: labels join only the tenant's own records of the model, are checked against the rows
each record answered, are upserted, and come back flattened per row for monitoring."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from resources.errors import InvalidRequest
from resources.predictions.feedback import MAX_FEEDBACK_ITEMS, FeedbackStore, LabelledRow, prediction_feedback
from resources.predictions.log import prediction_log

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def _log(state, request_id: str, *, tenant: str = "acme", model: str = "m-1", version: str = "1.0.0",
         predictions: list | None = None, probabilities: list | None = None, at: datetime = T0, status: int = 200,
         outputs: str | None = None) -> None:
    predictions = [0] if predictions is None else predictions
    if outputs is None:
        outputs = json.dumps({"prediction": predictions, "probabilities": probabilities, "confidence": None,
                              "entities": None, "feature_service": None, "members": None}, separators=(",", ":"))
    with state.engine.begin() as conn:
        conn.execute(sa.insert(prediction_log).values(
            request_id=request_id, tenant_id=tenant, model_id=model, model_version=version, at=at,
            features=json.dumps([{"x": i} for i in range(len(predictions))]), outputs=outputs, status_code=status,
        ))


def _stored(state) -> dict[tuple[str, str], object]:
    with state.engine.begin() as conn:
        rows = conn.execute(sa.select(prediction_feedback.c.tenant_id, prediction_feedback.c.request_id,
                                      prediction_feedback.c.label)).all()
    return {(t, r): json.loads(label) for t, r, label in rows}


@pytest.fixture
def feedback(state):
    return FeedbackStore(state)


def test_matched_unknown_and_rejected_are_counted(state, feedback):
    _log(state, "r-1")
    _log(state, "r-2", predictions=[1, 0, 1])
    _log(state, "r-3")
    outcome = feedback.submit("acme", "m-1", [("r-1", 1), ("r-2", 1), ("r-3", "yes"), ("nope", 0)])
    assert (outcome.matched, outcome.stored, outcome.unknown) == (3, 2, ["nope"])
    assert [r["request_id"] for r in outcome.rejected] == ["r-2"] and "3 rows" in outcome.rejected[0]["reason"]
    assert _stored(state) == {("acme", "r-1"): 1, ("acme", "r-3"): "yes"}


def test_another_tenants_or_models_request_id_is_unknown(state, feedback):
    _log(state, "r-1", tenant="globex")
    _log(state, "r-2", model="m-2")
    outcome = feedback.submit("acme", "m-1", [("r-1", 1), ("r-2", 1)])
    assert (outcome.matched, outcome.stored, outcome.rejected) == (0, 0, [])
    assert outcome.unknown == ["r-1", "r-2"]
    assert _stored(state) == {}


def test_the_same_item_twice_is_harmless_and_replaces_the_label(state, feedback):
    _log(state, "r-1")
    for label in (0, 0, 1):
        outcome = feedback.submit("acme", "m-1", [("r-1", label)])
        assert (outcome.matched, outcome.stored, outcome.unknown, outcome.rejected) == (1, 1, [], [])
    assert _stored(state) == {("acme", "r-1"): 1}
    outcome = feedback.submit("acme", "m-1", [("r-1", "a"), ("r-1", "b")])  # within a call: the last wins
    assert (outcome.matched, outcome.stored) == (1, 1)
    assert _stored(state) == {("acme", "r-1"): "b"}


def test_the_same_request_id_of_two_tenants_is_stored_apart(state, feedback):
    _log(state, "r-1", tenant="acme")
    _log(state, "r-1", tenant="globex")
    feedback.submit("acme", "m-1", [("r-1", 1)])
    feedback.submit("globex", "m-1", [("r-1", 0)])
    assert _stored(state) == {("acme", "r-1"): 1, ("globex", "r-1"): 0}


@pytest.mark.parametrize(("label", "ok"), [
    (1, False), ("a", False), ([1, 0, 1], True), ([1, 0], False), ([1, 0, 1, 1], False), (["a", 2.5, True], True),
    ([1, None, 1], False), ([1, [0], 1], False), ([1, float("nan"), 1], False),
])
def test_a_label_must_fit_the_rows_of_its_record(state, feedback, label, ok):
    _log(state, "r-3", predictions=[1, 0, 1])
    outcome = feedback.submit("acme", "m-1", [("r-3", label)])
    assert (outcome.matched, outcome.stored, len(outcome.rejected)) == (1, int(ok), int(not ok))


@pytest.mark.parametrize(("label", "ok"), [
    (1, True), (0.5, True), (True, True), ("cat", True), ([1], True), (float("nan"), False), (float("inf"), False),
    (None, False), ({"a": 1}, False), (2**70, False), ([], False),
])
def test_a_one_row_record_takes_a_finite_scalar(state, feedback, label, ok):
    _log(state, "r-1")
    outcome = feedback.submit("acme", "m-1", [("r-1", label)])
    assert (outcome.stored, len(outcome.rejected)) == (int(ok), int(not ok))


def test_a_record_without_readable_predictions_rejects_its_label(state, feedback):
    _log(state, "r-1", outputs=json.dumps({"truncated": True, "bytes": 10, "sha256": "0" * 64}))
    outcome = feedback.submit("acme", "m-1", [("r-1", 1)])
    assert (outcome.matched, outcome.stored, len(outcome.rejected)) == (1, 0, 1)


def test_more_than_the_cap_is_refused(state, feedback):
    with pytest.raises(InvalidRequest):
        feedback.submit("acme", "m-1", [(f"r-{i}", 1) for i in range(MAX_FEEDBACK_ITEMS + 1)])
    outcome = feedback.submit("acme", "m-1", [(f"r-{i}", 1) for i in range(MAX_FEEDBACK_ITEMS)])
    assert len(outcome.unknown) == MAX_FEEDBACK_ITEMS


def test_matching_is_done_in_bulk(state, feedback):
    for i in range(50):
        _log(state, f"r-{i}")
    selects = []
    sa.event.listen(state.engine, "before_cursor_execute",
                    lambda _c, _cur, statement, *_a: selects.append(statement) if statement.lstrip().startswith("SELECT") else None)
    outcome = feedback.submit("acme", "m-1", [(f"r-{i}", i % 2) for i in range(60)])
    assert (outcome.matched, outcome.stored, len(outcome.unknown)) == (50, 50, 10)
    assert len(selects) == 1


def test_labelled_flattens_the_models_answered_labelled_records(state, feedback):
    proba = [[0.9, 0.1], [0.2, 0.8]]
    _log(state, "old", predictions=[0, 1], probabilities=proba, at=T0)
    _log(state, "new", predictions=["b"], at=T0 + timedelta(minutes=5), version="2.0.0")
    _log(state, "unlabelled", at=T0 + timedelta(minutes=1))
    _log(state, "failed", at=T0 + timedelta(minutes=2), status=207)
    _log(state, "before", at=T0 - timedelta(seconds=1))
    _log(state, "at-end", at=T0 + timedelta(hours=1))
    _log(state, "other-model", model="m-2", at=T0 + timedelta(minutes=3))
    _log(state, "x", tenant="globex", at=T0 + timedelta(minutes=3))
    feedback.submit("acme", "m-1", [("old", [0, 0]), ("new", "a"), ("failed", 1), ("before", 1), ("at-end", 1)])
    feedback.submit("acme", "m-2", [("other-model", 1)])
    feedback.submit("globex", "m-1", [("x", 1)])

    rows = feedback.labelled("acme", "m-1", T0, T0 + timedelta(hours=1))
    assert rows == [
        LabelledRow("2.0.0", "b", None, "a"),
        LabelledRow("1.0.0", 0, [0.9, 0.1], 0),
        LabelledRow("1.0.0", 1, [0.2, 0.8], 0),
    ]
    assert feedback.labelled("acme", "m-1", T0, T0 + timedelta(hours=1), version="1.0.0") == rows[1:]
    assert feedback.labelled("acme", "m-1", T0, T0 + timedelta(hours=1), max_rows=2) == rows[:2]
    assert feedback.labelled("acme", "m-2", T0, T0 + timedelta(hours=1)) == [LabelledRow("1.0.0", 0, None, 1)]
    assert feedback.labelled("acme", "m-1", T0.replace(tzinfo=None), T0 + timedelta(minutes=1)) == rows[1:]
