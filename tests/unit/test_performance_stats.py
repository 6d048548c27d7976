"""The performance statistics of monitoring: equal to scikit-learn's / numpy's figures, label types reconciled,
undefined figures None, and the hourly buckets, distributions and error counts right at their edges."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest
from sklearn import metrics

from mlservice.monitoring.performance_stats import (
    classification_metrics,
    error_summary,
    hourly_throughput,
    latency_summary,
    prediction_distribution,
    regression_metrics,
)

TOL = 1e-12


def _noisy_probabilities(rng, y_index, k):
    """Per-row probabilities leaning (noisily) towards the true class, rows summing to 1."""
    raw = rng.random((len(y_index), k)) + 1.5 * np.eye(k)[y_index] * rng.random((len(y_index), 1))
    return raw / raw.sum(axis=1, keepdims=True)


def test_binary_metrics_with_string_labels_equal_sklearn():
    rng = np.random.default_rng(7)
    classes = ["no", "yes"]
    y_index = rng.integers(0, 2, 200)
    proba = _noisy_probabilities(rng, y_index, 2)
    y_true = np.asarray(classes)[y_index]
    y_pred = np.asarray(classes)[proba.argmax(axis=1)]
    y_pred[:15] = np.asarray(classes)[rng.integers(0, 2, 15)]

    got = classification_metrics(list(y_true), list(y_pred), proba.tolist(), classes)

    assert got["count"] == 200 and got["unknown_labels"] == 0
    assert got["accuracy"] == pytest.approx(metrics.accuracy_score(y_true, y_pred), abs=TOL)
    assert got["precision"] == pytest.approx(metrics.precision_score(y_true, y_pred, pos_label="yes"), abs=TOL)
    assert got["recall"] == pytest.approx(metrics.recall_score(y_true, y_pred, pos_label="yes"), abs=TOL)
    assert got["f1"] == pytest.approx(metrics.f1_score(y_true, y_pred, pos_label="yes"), abs=TOL)
    assert got["roc_auc"] == pytest.approx(metrics.roc_auc_score(y_true, proba[:, 1]), abs=TOL)
    assert got["log_loss"] == pytest.approx(metrics.log_loss(y_true, proba, labels=classes), abs=TOL)
    assert 0.5 < got["roc_auc"] < 1.0  # the data is informative but not perfect, so equality above is not trivial
    json.dumps(got)  # plain Python values


def test_binary_positive_class_is_the_second_class_even_when_unsorted():
    rng = np.random.default_rng(3)
    classes = ["yes", "no"]  # positive class "no"
    y_index = rng.integers(0, 2, 120)
    proba = _noisy_probabilities(rng, y_index, 2)
    y_true = np.asarray(classes)[y_index]
    y_pred = np.asarray(classes)[rng.integers(0, 2, 120)]

    got = classification_metrics(list(y_true), list(y_pred), proba.tolist(), classes)

    assert got["precision"] == pytest.approx(metrics.precision_score(y_true, y_pred, pos_label="no"), abs=TOL)
    assert got["roc_auc"] == pytest.approx(metrics.roc_auc_score(y_true == "no", proba[:, 1]), abs=TOL)
    # proba columns follow `classes`; sklearn wants them in sorted order ("no", "yes")
    assert got["log_loss"] == pytest.approx(metrics.log_loss(y_true, proba[:, ::-1], labels=["no", "yes"]), abs=TOL)


def test_multiclass_metrics_with_int_labels_equal_sklearn():
    rng = np.random.default_rng(11)
    classes = [0, 1, 2]
    y_true = rng.integers(0, 3, 300)
    proba = _noisy_probabilities(rng, y_true, 3)
    y_pred = proba.argmax(axis=1)
    y_pred[:30] = rng.integers(0, 3, 30)

    got = classification_metrics(y_true.tolist(), y_pred.tolist(), proba.tolist(), classes)

    assert got["count"] == 300
    assert got["accuracy"] == pytest.approx(metrics.accuracy_score(y_true, y_pred), abs=TOL)
    for name, fn in (("precision", metrics.precision_score), ("recall", metrics.recall_score), ("f1", metrics.f1_score)):
        assert got[name] == pytest.approx(fn(y_true, y_pred, average="macro", zero_division=0), abs=TOL)
    assert got["roc_auc"] == pytest.approx(metrics.roc_auc_score(y_true, proba, multi_class="ovr", average="macro"), abs=TOL)
    assert got["log_loss"] == pytest.approx(metrics.log_loss(y_true, proba, labels=classes), abs=TOL)


def test_labels_arriving_as_strings_or_floats_match_int_classes():
    y_true, y_pred = [0, 1, 2, 1, 0, 2], [0, 2, 2, 1, 0, 1]
    proba = [[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.1, 0.1, 0.8], [0.2, 0.6, 0.2], [0.5, 0.3, 0.2], [0.2, 0.5, 0.3]]
    as_ints = classification_metrics(y_true, y_pred, proba, [0, 1, 2])
    as_text = classification_metrics([str(v) for v in y_true], [float(v) for v in y_pred], proba, [0, 1, 2])
    text_classes = classification_metrics(y_true, y_pred, proba, ["0", "1", "2"])
    assert as_ints["unknown_labels"] == as_text["unknown_labels"] == text_classes["unknown_labels"] == 0
    assert as_text == as_ints
    assert text_classes == as_ints
    assert as_ints["accuracy"] == pytest.approx(4 / 6)


def test_unknown_labels_are_counted_and_left_out():
    y_true = ["no", "yes", "maybe", "yes", "no", None]
    y_pred = ["no", "yes", "yes", "no", "perhaps", "no"]
    proba = [[0.8, 0.2], [0.3, 0.7], [0.5, 0.5], [0.6, 0.4], [0.9, 0.1], [0.5, 0.5]]
    got = classification_metrics(y_true, y_pred, proba, ["no", "yes"])
    assert got["unknown_labels"] == 3 and got["count"] == 3
    kept_true, kept_pred, kept_proba = ["no", "yes", "yes"], ["no", "yes", "no"], [[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]]
    assert got["accuracy"] == pytest.approx(metrics.accuracy_score(kept_true, kept_pred), abs=TOL)
    assert got["recall"] == pytest.approx(0.5)
    assert got["log_loss"] == pytest.approx(metrics.log_loss(kept_true, kept_proba, labels=["no", "yes"]), abs=TOL)

    nothing_known = classification_metrics(["a"], ["b"], None, ["no", "yes"])
    assert nothing_known["count"] == 0 and nothing_known["unknown_labels"] == 1
    assert nothing_known["accuracy"] is None and nothing_known["f1"] is None


def test_single_class_truth_has_no_roc_auc_but_has_log_loss():
    got = classification_metrics(["yes"] * 4, ["yes", "no", "yes", "yes"], [[0.2, 0.8], [0.6, 0.4], [0.3, 0.7], [0.1, 0.9]], ["no", "yes"])
    assert got["roc_auc"] is None
    assert got["log_loss"] is not None and math.isfinite(got["log_loss"])
    assert got["accuracy"] == pytest.approx(0.75)

    three = classification_metrics([0, 1, 0], [0, 1, 1], [[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.4, 0.5, 0.1]], [0, 1, 2])
    assert three["roc_auc"] is None  # class 2 never occurs: one-vs-rest AUC undefined (sklearn says NaN)


def test_without_probabilities_roc_auc_and_log_loss_are_none():
    got = classification_metrics(["no", "yes", "yes"], ["no", "yes", "no"], None, ["no", "yes"])
    assert got["roc_auc"] is None and got["log_loss"] is None
    assert got["accuracy"] == pytest.approx(2 / 3)
    assert got["precision"] == pytest.approx(1.0) and got["recall"] == pytest.approx(0.5)


def test_probabilities_of_the_wrong_shape_are_refused():
    with pytest.raises(ValueError, match="probabilities"):
        classification_metrics(["no", "yes"], ["no", "yes"], [[0.5, 0.5]], ["no", "yes"])


def test_regression_metrics_equal_sklearn():
    rng = np.random.default_rng(5)
    y_true = rng.normal(10, 3, 250)
    y_pred = y_true + rng.normal(0, 1, 250)
    got = regression_metrics(y_true.tolist(), y_pred.tolist())
    assert got["count"] == 250
    assert got["mae"] == pytest.approx(metrics.mean_absolute_error(y_true, y_pred), abs=TOL)
    assert got["rmse"] == pytest.approx(math.sqrt(metrics.mean_squared_error(y_true, y_pred)), abs=TOL)
    assert got["r2"] == pytest.approx(metrics.r2_score(y_true, y_pred), abs=TOL)
    assert regression_metrics([1.0], [3.0]) == {"mae": 2.0, "rmse": 2.0, "r2": None, "count": 1}
    assert regression_metrics([], []) == {"mae": None, "rmse": None, "r2": None, "count": 0}


def test_latency_percentiles_equal_numpy_and_skip_missing():
    rng = np.random.default_rng(1)
    values = rng.lognormal(3, 0.5, 501)
    got = latency_summary([*values.tolist(), None])
    expected = np.percentile(values, [50, 95, 99], method="linear")
    assert [got["p50"], got["p95"], got["p99"]] == pytest.approx(expected.tolist(), abs=TOL)
    assert got["mean"] == pytest.approx(values.mean(), abs=TOL) and got["max"] == values.max()
    assert latency_summary([1.0, 2.0, 3.0, 4.0])["p95"] == pytest.approx(3.85)
    assert latency_summary([]) == {"p50": None, "p95": None, "p99": None, "mean": None, "max": None}


def test_hourly_buckets_include_empty_hours_and_split_at_the_boundary():
    start = datetime(2026, 3, 1, 10, 30, tzinfo=UTC)
    end = datetime(2026, 3, 1, 14, 0, tzinfo=UTC)
    stamps = [
        datetime(2026, 3, 1, 10, 59, 59, 999999, tzinfo=UTC),
        datetime(2026, 3, 1, 11, 0, tzinfo=UTC),  # exactly on the hour: the 11:00 bucket
        datetime(2026, 3, 1, 7, 0, tzinfo=timezone(timedelta(hours=-6))),  # 13:00 UTC
        datetime(2026, 3, 1, 10, 15, tzinfo=UTC),  # before start
        datetime(2026, 3, 1, 14, 0, tzinfo=UTC),  # end is exclusive
    ]
    got = hourly_throughput(stamps, start, end)
    assert got == [
        {"hour": "2026-03-01T10:00:00+00:00", "requests": 1},
        {"hour": "2026-03-01T11:00:00+00:00", "requests": 1},
        {"hour": "2026-03-01T12:00:00+00:00", "requests": 0},
        {"hour": "2026-03-01T13:00:00+00:00", "requests": 1},
    ]
    assert len(hourly_throughput([], start, end + timedelta(minutes=1))) == 5


def test_hourly_window_is_bounded_and_naive_times_refused():
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert len(hourly_throughput([], start, start + timedelta(hours=24 * 31))) == 24 * 31
    with pytest.raises(ValueError, match="hours"):
        hourly_throughput([], start, start + timedelta(hours=24 * 31, minutes=1))
    with pytest.raises(ValueError, match="timezone"):
        hourly_throughput([], start.replace(tzinfo=None), start + timedelta(hours=1))


def test_prediction_distribution_shares_sum_to_one():
    got = prediction_distribution(["yes", "no", "yes", "yes", 1, 1.0], "classification")
    assert got["count"] == 6
    assert got["classes"] == {"1": pytest.approx(2 / 6), "no": pytest.approx(1 / 6), "yes": pytest.approx(3 / 6)}
    assert sum(got["classes"].values()) == pytest.approx(1.0)
    assert prediction_distribution([], "classification") == {"classes": {}, "count": 0}


def test_regression_distribution_quantiles_equal_numpy():
    values = np.random.default_rng(2).normal(0, 1, 400)
    got = prediction_distribution(values.tolist(), "regression")
    expected = np.percentile(values, [5, 25, 50, 75, 95], method="linear")
    assert list(got["quantiles"]) == ["p05", "p25", "p50", "p75", "p95"]
    assert list(got["quantiles"].values()) == pytest.approx(expected.tolist(), abs=TOL)
    assert got["mean"] == pytest.approx(values.mean(), abs=TOL) and got["std"] == pytest.approx(values.std(), abs=TOL)
    assert got["count"] == 400
    empty = prediction_distribution([], "regression")
    assert empty["count"] == 0 and empty["mean"] is None and all(v is None for v in empty["quantiles"].values())
    with pytest.raises(ValueError, match="model type"):
        prediction_distribution([1], "ranking")


def test_error_summary_counts_non_2xx():
    got = error_summary([200, 200, 201, 422, 422, 500, 404, 204])
    assert got == {"requests": 8, "errors": 4, "error_rate": 0.5, "by_status": {"200": 2, "201": 1, "204": 1, "404": 1, "422": 2, "500": 1}}
    assert error_summary([]) == {"requests": 0, "errors": 0, "error_rate": None, "by_status": {}}
