"""Drift statistics: each test is checked against scipy or a hand computation, and the report-level false-alarm rate
under no drift is checked by simulation (the reason the default correction is Benjamini-Hochberg)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from mlservice.monitoring import drift_stats as ds
from mlservice.monitoring.drift_stats import (
    CORRECTIONS,
    DEFAULT_CORRECTION,
    KS_EXACT_MAX_CELLS,
    MIN_SAMPLES,
    categorical_psi,
    chi_square_test,
    correct,
    drift_results,
    feature_drift,
    ks_test,
    normed_wasserstein,
    psi,
)

# ---------------------------------------------------------------- KS


@pytest.mark.parametrize(
    ("n1", "n2", "mode"),
    [
        (40, 55, "exact"), (300, 800, "exact"), (1000, 1000, "exact"), (20_000, 50, "exact"),
        (1000, 1001, "asymp"), (3000, 2000, "asymp"), (10_000, 150, "asymp"),
    ],
)
def test_ks_matches_scipy_with_the_chosen_mode(n1, n2, mode):
    rng = np.random.default_rng(n1 + n2)
    ref, cur = rng.normal(size=n1), rng.normal(0.1, 1.2, size=n2)
    res = ks_test(ref, cur)
    expected = stats.ks_2samp(ref, cur, method=mode)
    assert res.mode == mode
    assert res.statistic == pytest.approx(expected.statistic, abs=1e-9)
    assert res.p_value == pytest.approx(expected.pvalue, abs=1e-9)
    assert type(res.statistic) is float and type(res.p_value) is float


def test_ks_mode_switches_at_the_threshold(monkeypatch):
    assert KS_EXACT_MAX_CELLS == 1000 * 1000
    monkeypatch.setattr(ds, "KS_EXACT_MAX_CELLS", 50 * 60)
    rng = np.random.default_rng(1)
    assert ks_test(rng.normal(size=50), rng.normal(size=60)).mode == "exact"
    assert ks_test(rng.normal(size=50), rng.normal(size=61)).mode == "asymp"


def test_ks_drops_nan_and_refuses_an_empty_side():
    rng = np.random.default_rng(2)
    ref, cur = rng.normal(size=100), rng.normal(size=80)
    with_nan = np.concatenate([ref, [np.nan, np.nan]])
    assert ks_test(with_nan, cur) == ks_test(ref, cur)
    with pytest.raises(ValueError, match="non-missing"):
        ks_test([np.nan, np.nan], cur)


# ---------------------------------------------------------------- chi-square


def test_chi_square_matches_scipy_on_a_hand_built_table():
    ref = ["a"] * 10 + ["b"] * 20 + ["c"] * 30
    cur = ["c"] * 10 + ["a"] * 20 + ["b"] * 20
    res = chi_square_test(ref, cur)
    expected = stats.chi2_contingency(np.array([[10, 20, 30], [20, 20, 10]]), correction=False)
    assert res.categories == ("a", "b", "c")
    assert res.statistic == pytest.approx(expected.statistic, abs=1e-9)
    assert res.p_value == pytest.approx(expected.pvalue, abs=1e-9)
    assert res.dof == 2


def test_chi_square_counts_an_unseen_current_category():
    res = chi_square_test(["a"] * 50 + ["b"] * 50, ["z"] * 100)
    assert res.categories == ("a", "b", "z")
    assert res.dof == 2
    assert res.p_value < 1e-30
    [fd] = drift_results({"c": ["a"] * 50 + ["b"] * 50}, {"c": ["z"] * 100}, {"c": "categorical"})
    assert fd.drifted and fd.method == "chi2" and fd.mode is None and fd.wasserstein_normed is None


def test_chi_square_single_category_is_not_drift():
    assert chi_square_test(["a"] * 40, ["a"] * 35) == (0.0, 1.0, 0, ("a",))


def test_chi_square_compares_values_as_strings_and_drops_missing():
    res = chi_square_test([1, 1, "2", None], ["1", 2, 2, float("nan"), np.nan])
    assert res.categories == ("1", "2")
    expected = stats.chi2_contingency(np.array([[2, 1], [1, 2]]), correction=False)
    assert res.statistic == pytest.approx(expected.statistic, abs=1e-12)


# ---------------------------------------------------------------- PSI


def test_psi_hand_computed():
    ref = np.arange(1.0, 9.0)  # median 4.5 -> bins (-inf, 4.5) and [4.5, inf), shares 0.5 / 0.5
    cur = [1, 2, 3, 5, 6, 7, 8, 9, 10, 11]  # shares 0.3 / 0.7
    assert psi(ref, cur, bins=2) == pytest.approx(0.2 * math.log(0.7 / 0.3), abs=1e-12)
    # no current value below the median: the empty share becomes 1e-4
    expected = (1e-4 - 0.5) * math.log(1e-4 / 0.5) + (1.0 - 0.5) * math.log(1.0 / 0.5)
    assert psi(ref, [5, 6, 7], bins=2) == pytest.approx(expected, abs=1e-12)


def test_psi_identical_is_zero_and_shift_is_large():
    rng = np.random.default_rng(3)
    ref = rng.normal(size=5000)
    assert psi(ref, ref) == pytest.approx(0.0, abs=1e-12)
    assert psi(ref, rng.normal(size=5000)) < 0.02
    assert psi(ref, rng.normal(1.0, 1.0, size=5000)) > 0.2


def test_psi_constant_and_few_valued_references():
    const = np.full(100, 5.0)
    assert psi(const, np.full(50, 5.0)) == pytest.approx(0.0, abs=1e-12)
    assert psi(const, np.full(50, 6.0)) > 1.0  # would be 0 with a single quantile bin
    assert psi(const, np.full(50, 4.0)) > 1.0
    flag = np.array([0.0] * 95 + [1.0] * 5)
    assert psi(flag, np.array([0.0] * 50 + [1.0] * 50)) > 0.2


def test_categorical_psi_hand_computed_over_the_union():
    ref, cur = ["a"] * 50 + ["b"] * 50, ["a"] * 80 + ["b"] * 20
    assert categorical_psi(ref, cur) == pytest.approx(0.3 * math.log(1.6) - 0.3 * math.log(0.4), abs=1e-12)
    expected = (0.5 - 0.5) * 0 + (0.25 - 0.5) * math.log(0.5) + (0.25 - 1e-4) * math.log(0.25 / 1e-4)
    assert categorical_psi(ref, ["a"] * 2 + ["b", "c"]) == pytest.approx(expected, abs=1e-12)


# ---------------------------------------------------------------- Wasserstein


def test_normed_wasserstein_is_scipy_distance_over_reference_std():
    rng = np.random.default_rng(4)
    ref, cur = rng.normal(2.0, 3.0, size=700), rng.normal(2.5, 3.0, size=900)
    expected = stats.wasserstein_distance(ref, cur) / np.std(ref)
    assert normed_wasserstein(ref, cur) == pytest.approx(expected, abs=1e-12)
    assert normed_wasserstein(np.full(10, 1.0), np.full(10, 3.0)) == pytest.approx(2.0)  # std 0: divided by 1


@pytest.mark.parametrize("seed", range(6))
def test_wasserstein_equals_scipys_with_ties_and_unequal_sizes(seed):
    rng = np.random.default_rng(seed)
    n, m = int(rng.integers(1, 3000)), int(rng.integers(1, 30000))
    if seed % 2:  # few distinct values: long runs of ties on both sides and across them
        ref, cur = rng.integers(0, 6, n).astype(float), rng.integers(1, 8, m).astype(float)
    else:
        ref, cur = rng.lognormal(0, 2, n), rng.lognormal(0.1, 2, m)
    expected = stats.wasserstein_distance(ref, cur) / (np.std(ref) or 1.0)
    assert normed_wasserstein(ref, cur) == pytest.approx(expected, rel=1e-12, abs=1e-12)
    result = feature_drift("x", ref, cur, "numeric", min_samples=1)  # the report's path: one sort per side
    assert result.wasserstein_normed == pytest.approx(expected, rel=1e-12, abs=1e-12)


# ---------------------------------------------------------------- corrections


def test_corrections_on_a_hand_example():
    assert CORRECTIONS == ("none", "bonferroni", "fdr_bh") and DEFAULT_CORRECTION == "fdr_bh"
    assert correct([0.001, 0.2, 0.3], "bonferroni") == pytest.approx([0.003, 0.6, 0.9])
    assert correct([0.5, 0.4], "bonferroni") == [1.0, 0.8]
    p = [0.042, 0.001, 0.205, 0.039, 0.008, 0.074, 0.041, 0.06]
    # sorted p*m/rank = .008 .032 .104 .082 .0672 .08 .0846 .205, then running minimum from the top
    assert correct(p, "fdr_bh") == pytest.approx([0.0672, 0.008, 0.205, 0.0672, 0.032, 0.074 * 8 / 7, 0.0672, 0.08], abs=1e-12)
    assert correct(p, "none") == p
    assert correct([], "fdr_bh") == []
    with pytest.raises(ValueError, match="holm"):
        correct(p, "holm")


def test_report_false_alarm_rate_under_no_drift():
    kinds = {f"f{i}": "numeric" for i in range(4)}
    alarms = dict.fromkeys(CORRECTIONS, 0)
    seeds = 300
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        ref = {f: rng.normal(size=1000) for f in kinds}
        cur = {f: rng.normal(size=1000) for f in kinds}
        p = [r.p_value for r in drift_results(ref, cur, kinds, correction="none")]
        for method in CORRECTIONS:
            alarms[method] += any(q < 0.05 for q in correct(p, method))
        if seed < 20:  # the correction inside drift_results is the same one
            reports = drift_results(ref, cur, kinds)
            assert [r.p_value_corrected for r in reports] == correct(p, DEFAULT_CORRECTION)
    rate = {m: n / seeds for m, n in alarms.items()}
    assert 0.01 <= rate["fdr_bh"] <= 0.09, rate
    assert 0.01 <= rate["bonferroni"] <= 0.09, rate
    assert rate["none"] >= 0.12, rate


def test_a_shifted_feature_is_found_among_null_features():
    rng = np.random.default_rng(5)
    kinds = {f"f{i}": "numeric" for i in range(4)}
    ref = {f: rng.normal(size=2000) for f in kinds}
    cur = {f: rng.normal(0.3 if f == "f0" else 0.0, 1.0, size=2000) for f in kinds}
    results = drift_results(ref, cur, kinds)
    assert [r.drifted for r in results] == [True, False, False, False]
    assert results[0].mode == "asymp" and results[0].p_value_corrected < 1e-6
    assert all(r.status == "ok" and r.method == "ks_2samp" for r in results)


# ---------------------------------------------------------------- drift_results bookkeeping


def test_insufficient_data_is_not_tested_nor_corrected_and_missing_values_are_counted():
    rng = np.random.default_rng(6)
    ref = {"small": rng.normal(size=10), "num": [*rng.normal(size=200), None, np.nan, np.inf], "cat": ["x", "y"] * 50 + [None]}
    cur = {"small": rng.normal(size=100), "num": [*rng.normal(size=150), np.nan], "cat": ["x"] * 60 + ["y"] * 40 + [float("nan")] * 2}
    kinds = {"small": "numeric", "num": "numeric", "cat": "categorical"}
    small, num, cat = drift_results(ref, cur, kinds, correction="bonferroni")
    assert small.status == "insufficient_data" and small.reference_size == 10 < MIN_SAMPLES
    assert (small.statistic, small.p_value, small.p_value_corrected, small.mode, small.psi, small.drifted) == (None,) * 5 + (False,)
    assert (num.status, cat.status) == ("ok", "ok")
    for r in (num, cat):  # two features tested, so Bonferroni multiplies by 2, not 3
        assert r.p_value_corrected == pytest.approx(min(1.0, 2 * r.p_value))
    assert (num.reference_size, num.missing_reference, num.current_size, num.missing_current) == (200, 3, 150, 1)
    assert (cat.reference_size, cat.missing_reference, cat.current_size, cat.missing_current) == (100, 1, 100, 2)
    assert num.statistic == pytest.approx(ks_test(ref["num"][:200], cur["num"][:150]).statistic)
    assert all(type(v) is float for v in (num.statistic, num.p_value, num.p_value_corrected, num.psi, num.wasserstein_normed))
    assert drift_results(ref, cur, kinds, min_samples=5)[0].status == "ok"


def test_numeric_feature_with_strings_is_refused_by_name():
    ref = {"age": [30, 40, "fifty"] * 20}
    with pytest.raises(ValueError, match="'age'"):
        drift_results(ref, {"age": list(range(60))}, {"age": "numeric"})
    with pytest.raises(ValueError, match="'age'"):  # numeric-looking strings too: the log should hold numbers
        drift_results({"age": ["1.5"] * 60}, {"age": list(range(60))}, {"age": "numeric"})
    with pytest.raises(ValueError, match="'age'"):
        drift_results({"age": [{"a": 1}] * 60}, {"age": list(range(60))}, {"age": "numeric"})


def test_bad_arguments():
    data = {"f": list(range(50))}
    with pytest.raises(ValueError, match="kind"):
        drift_results(data, data, {"f": "ordinal"})
    with pytest.raises(ValueError, match=r"'g'.*current"):
        drift_results({"g": [1] * 50, **data}, data, {"g": "numeric"})
    with pytest.raises(ValueError, match="correction"):
        drift_results(data, data, {"f": "numeric"}, correction="holm")


def test_pandas_missing_markers_are_missing():
    pd = pytest.importorskip("pandas")
    ref = pd.Series(["a", "b"] * 30 + [None, np.nan], dtype="string")  # both become pd.NA
    [fd] = drift_results({"c": ref}, {"c": ["a", "b"] * 30}, {"c": "categorical"})
    assert (fd.reference_size, fd.missing_reference, fd.p_value) == (60, 2, pytest.approx(1.0))
    num = pd.Series([*range(40), None], dtype="Int64").astype(object).to_numpy()  # holds pd.NA itself
    [fd] = drift_results({"n": num}, {"n": list(range(40))}, {"n": "numeric"})
    assert (fd.reference_size, fd.missing_reference, fd.status) == (40, 1, "ok")
