"""Drift statistics: pure functions comparing a reference sample with a current sample, feature by feature.

No I/O. scipy is imported inside the functions that need it: `import scipy.stats` costs ~1 s here, numpy ~0.13 s,
and importing this module must stay cheap for the API.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

import numpy as np

# scipy's ks_2samp method="exact" costs O(n1*n2) and most when the samples differ most; measured on the 2-core dev box
# (scipy 1.17): 500x499 1.0-2.9 ms; 1000x999 1.5 ms (no drift) to 10 ms (3 std shift); 2000x1999 1.9-37 ms;
# 1000x4000 2.5-78 ms; 5000x4999 8-75 ms (0.5 std shift); 10000x9999 22-335 ms; 10000x100000 0.2-28 s.
# (Equal sizes take a closed form, <= 4 ms even at 10000x10000, but the rule stays on n1*n2.) Exact up to 1000x1000
# keeps the worst case near 10 ms; beyond, the asymptotic p-value agrees with the exact one to ~1e-3 anyway.
KS_EXACT_MAX_CELLS = 1_000_000

# Below ~30 values per side KS has little power and asymptotic p-values are unreliable: such a feature is reported as
# "insufficient_data" (the caller answers "too little data") instead of carrying a made-up p-value.
MIN_SAMPLES = 30

# A report tests several features at once. Uncorrected, alpha=0.05 on 4 independent null features gives a false-alarm
# report 1-0.95**4 ~ 18.5% of the time, and a retrain-on-drift sensor would fire on noise. Benjamini-Hochberg keeps the
# report-level false-alarm rate at alpha when nothing drifts and keeps more power than Bonferroni when several do.
CORRECTIONS = ("none", "bonferroni", "fdr_bh")
DEFAULT_CORRECTION = "fdr_bh"

KINDS = ("numeric", "categorical")

# Empty bin/category shares are replaced by this before the log in PSI (otherwise ln(0) makes it infinite).
PSI_EPSILON = 1e-4


class KsResult(NamedTuple):
    statistic: float
    p_value: float
    mode: str  # "exact" or "asymp": the method scipy actually used


class ChiResult(NamedTuple):
    statistic: float
    p_value: float
    dof: int
    categories: tuple[str, ...]  # the union of categories, sorted: the columns of the 2 x k table


@dataclasses.dataclass(frozen=True)
class FeatureDrift:
    """One feature's drift verdict. statistic/p_value are None when the feature was not tested (status "insufficient_data")."""

    feature: str
    kind: str  # "numeric" | "categorical"
    method: str  # "ks_2samp" | "chi2"
    mode: str | None  # KS "exact" | "asymp"; None for chi2 and untested features
    statistic: float | None
    p_value: float | None
    p_value_corrected: float | None
    drifted: bool
    psi: float | None
    wasserstein_normed: float | None  # numeric only
    reference_size: int  # non-missing values
    current_size: int
    missing_reference: int
    missing_current: int
    status: str  # "ok" | "insufficient_data"


def _numeric(values: object, name: str) -> tuple[np.ndarray, int]:
    """Finite float values and the count of missing ones (None, NaN, +-inf). Strings are refused, even "1.5"."""
    arr = np.asarray(values)
    if arr.dtype.kind == "O":
        if any(issubclass(t, str | bytes) for t in set(map(type, arr.ravel().tolist()))):  # set(map()) runs at C speed
            raise ValueError(f"feature {name!r} is numeric but holds strings")
        try:
            arr = arr.astype(float)
        except (TypeError, ValueError):  # pandas' NA refuses float(); anything else left is not a number
            try:
                arr = np.array([np.nan if _is_missing(v) else v for v in arr.ravel().tolist()], dtype=float)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"feature {name!r} is numeric but holds non-numeric values") from exc
    elif arr.dtype.kind not in "biuf":
        raise ValueError(f"feature {name!r} is numeric but holds {arr.dtype} values")
    arr = arr.astype(float, copy=False).ravel()
    finite = np.isfinite(arr)
    if finite.all():
        return arr, 0
    return arr[finite], int(arr.size - finite.sum())


def _is_missing(v: object) -> bool:
    """None, NaN, NaT, pandas' NA (whose comparisons are themselves NA, so bool() raises)."""
    try:
        return v is None or bool(v != v)  # noqa: PLR0124 - only NaN-like values differ from themselves
    except TypeError:
        return True


def _categorical(values: Iterable[object]) -> tuple[Counter[str], int]:
    """Counts per str(v) and the count of missing ones (None, NaN, pandas NA).

    1 and "1" are one category. Values equal in Python (1, 1.0, True) are counted together first, under the str of the
    first seen: a column mixing them is inconsistent anyway, and counting raw values keeps 100k values at ~5 ms.
    """
    if isinstance(values, np.ndarray):
        if values.dtype.kind in "US":  # cannot hold None/NaN
            return Counter(values.astype(str).ravel().tolist()), 0
        values = values.ravel().tolist()
    elif not isinstance(values, list | tuple):
        values = list(values)  # an iterator would be half consumed if the first Counter() failed
    try:
        raw = Counter(values)  # C-speed on the raw values; only the distinct ones are converted below
    except TypeError:  # unhashable values (lists, dicts): count their strings
        raw = Counter(str(v) if v is not None else None for v in values)
    counts: Counter[str] = Counter()
    missing = 0
    for v, n in raw.items():
        if _is_missing(v):
            missing += n
        else:
            counts[str(v)] += n
    return counts, missing


def _pair(reference: object, current: object, *, numeric: bool) -> tuple:
    """Both sides cleaned (missing values dropped) for a public test function; refuses an empty side."""
    if numeric:
        ref, cur = _numeric(reference, "reference")[0], _numeric(current, "current")[0]
    else:
        ref, cur = _categorical(reference)[0], _categorical(current)[0]
    if len(ref) == 0 or len(cur) == 0:
        raise ValueError("a drift test needs at least one non-missing value on each side")
    return ref, cur


def ks_test(reference: object, current: object) -> KsResult:
    """Two-sample Kolmogorov-Smirnov on the non-missing values; exact p-value up to KS_EXACT_MAX_CELLS, asymptotic beyond."""
    from scipy.stats import ks_2samp

    ref, cur = _pair(reference, current, numeric=True)
    mode = "exact" if ref.size * cur.size <= KS_EXACT_MAX_CELLS else "asymp"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        res = ks_2samp(ref, cur, method=mode)
    if mode == "exact" and any("Switching" in str(w.message) for w in caught):
        mode = "asymp"  # scipy gave up on the exact computation and said so
    return KsResult(float(res.statistic), float(res.pvalue), mode)


def _category_counts(ref_counts: Counter[str], cur_counts: Counter[str]) -> tuple[tuple[str, ...], np.ndarray]:
    cats = tuple(sorted(ref_counts.keys() | cur_counts.keys()))
    return cats, np.array([[ref_counts[c] for c in cats], [cur_counts[c] for c in cats]], dtype=float)


def chi_square_test(reference: Iterable[object], current: Iterable[object]) -> ChiResult:
    """Chi-square test of homogeneity on the 2 x k table of category counts over the union of categories.

    Categories seen on one side only are counted (an unseen current category is drift, not noise to drop). Values are
    compared as str(v). With a single category overall the test is undefined: statistic 0, p-value 1, dof 0.
    """
    return _chi_from_table(*_category_counts(*_pair(reference, current, numeric=False)))


def _chi_from_table(cats: tuple[str, ...], table: np.ndarray) -> ChiResult:
    from scipy.stats import chi2_contingency

    if len(cats) < 2:
        return ChiResult(0.0, 1.0, 0, cats)
    res = chi2_contingency(table, correction=False)
    return ChiResult(float(res.statistic), float(res.pvalue), int(res.dof), cats)


def _psi_from_counts(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    ref_share, cur_share = (np.where(c == 0, PSI_EPSILON, c / c.sum()) for c in (ref_counts, cur_counts))
    return float(np.sum((cur_share - ref_share) * np.log(cur_share / ref_share)))


def psi(reference: object, current: object, *, bins: int = 10) -> float:
    """Population stability index of a numeric feature, bins from the reference's quantiles.

    Cut points are the unique interior quantiles of the reference; the outer bins are open (-inf, +inf) so every current
    value falls in a bin. A reference with at most `bins` distinct values (a flag, a constant) is binned by value
    instead: each distinct value is a bin and so is each gap between/beyond them, so values the reference never took
    count as a shift (plain quantile bins would put a constant reference in one bin and see nothing).
    """
    if bins < 1:
        raise ValueError("bins must be >= 1")
    ref, cur = _pair(reference, current, numeric=True)
    distinct = np.unique(ref)
    if distinct.size <= bins:
        cuts = np.column_stack([distinct, np.nextafter(distinct, np.inf)]).ravel()
    else:
        cuts = np.unique(np.quantile(ref, np.linspace(0.0, 1.0, bins + 1)[1:-1]))
    n = cuts.size + 1
    ref_counts = np.bincount(np.searchsorted(cuts, ref, side="right"), minlength=n)
    cur_counts = np.bincount(np.searchsorted(cuts, cur, side="right"), minlength=n)
    return _psi_from_counts(ref_counts, cur_counts)


def categorical_psi(reference: Iterable[object], current: Iterable[object]) -> float:
    """PSI over the union of categories (values as str(v), missing dropped); empty shares become PSI_EPSILON."""
    _, table = _category_counts(*_pair(reference, current, numeric=False))
    return _psi_from_counts(table[0], table[1])


def normed_wasserstein(reference: object, current: object) -> float:
    """Wasserstein-1 distance divided by the reference's std (ddof=0), as Evidently normalises; by 1 when that std is 0."""
    ref, cur = _pair(reference, current, numeric=True)
    std = float(np.std(ref))
    return _wasserstein_sorted(np.sort(ref), np.sort(cur)) / (std if std > 0 else 1.0)


def _wasserstein_sorted(u: np.ndarray, v: np.ndarray) -> float:
    """Wasserstein-1 distance of two sorted samples: the area between their empirical CDFs, as
    ``scipy.stats.wasserstein_distance`` computes it (equal to it to 1e-12, a test) in half the time:
    a stable argsort of the two sorted runs is one linear merge, and each CDF is a running count of
    the values from its side (within a run of ties the widths are 0, so only the count after the
    last tie, which is every value <= x, is ever weighed)."""
    merged = np.concatenate([u, v])
    order = np.argsort(merged, kind="stable")
    merged = merged[order]
    from_u = np.cumsum(order[:-1] < u.size)
    u_cdf = from_u / u.size
    v_cdf = (np.arange(1, merged.size) - from_u) / v.size
    return float(np.dot(np.abs(u_cdf - v_cdf), np.diff(merged)))


def correct(p_values: Sequence[float], method: str) -> list[float]:
    """p-values adjusted for multiple testing: "none", "bonferroni" (min(1, p*m)) or "fdr_bh" (Benjamini-Hochberg)."""
    if method not in CORRECTIONS:
        raise ValueError(f"unknown correction {method!r}; expected one of {CORRECTIONS}")
    p = np.asarray(p_values, dtype=float)
    if p.size == 0 or method == "none":
        return [float(v) for v in p]
    if method == "bonferroni":
        return [float(v) for v in np.minimum(1.0, p * p.size)]
    from scipy.stats import false_discovery_control

    return [float(v) for v in np.atleast_1d(false_discovery_control(p, method="bh"))]


def feature_drift(
    feature: str, reference: object, current: object, kind: str, *, alpha: float = 0.05, min_samples: int = MIN_SAMPLES
) -> FeatureDrift:
    """One feature, uncorrected (p_value_corrected = p_value). drift_results corrects across features."""
    if kind not in KINDS:
        raise ValueError(f"feature {feature!r}: unknown kind {kind!r}; expected one of {KINDS}")
    if kind == "numeric":
        ref, miss_ref = _numeric(reference, feature)
        cur, miss_cur = _numeric(current, feature)
        n_ref, n_cur = ref.size, cur.size
    else:
        ref, miss_ref = _categorical(reference)
        cur, miss_cur = _categorical(current)
        n_ref, n_cur = ref.total(), cur.total()
    base = {
        "feature": feature, "kind": kind, "method": "ks_2samp" if kind == "numeric" else "chi2",
        "reference_size": n_ref, "current_size": n_cur, "missing_reference": miss_ref, "missing_current": miss_cur,
    }
    if min(n_ref, n_cur) < max(min_samples, 1):
        return FeatureDrift(**base, mode=None, statistic=None, p_value=None, p_value_corrected=None, drifted=False,
                            psi=None, wasserstein_normed=None, status="insufficient_data")
    if kind == "numeric":
        ref, cur = np.sort(ref), np.sort(cur)  # sorted input makes scipy's KS and Wasserstein ~20% faster
        stat, p, mode = ks_test(ref, cur)
        std = float(np.std(ref))
        psi_value, wd = psi(ref, cur), _wasserstein_sorted(ref, cur) / (std if std > 0 else 1.0)
    else:
        cats, table = _category_counts(ref, cur)
        stat, p, _, _ = _chi_from_table(cats, table)
        mode, psi_value, wd = None, _psi_from_counts(table[0], table[1]), None
    return FeatureDrift(**base, mode=mode, statistic=stat, p_value=p, p_value_corrected=p, drifted=p < alpha,
                        psi=psi_value, wasserstein_normed=wd, status="ok")


def drift_results(
    reference: Mapping[str, object], current: Mapping[str, object], kinds: Mapping[str, str], *,
    alpha: float = 0.05, correction: str = DEFAULT_CORRECTION, min_samples: int = MIN_SAMPLES,
) -> list[FeatureDrift]:
    """Drift of every feature in `kinds` (in its order), p-values corrected across the features actually tested."""
    if not 0 < alpha < 1:
        raise ValueError("alpha must be in (0, 1)")
    if correction not in CORRECTIONS:
        raise ValueError(f"unknown correction {correction!r}; expected one of {CORRECTIONS}")
    results = []
    for feature, kind in kinds.items():
        if feature not in reference or feature not in current:
            raise ValueError(f"feature {feature!r} is missing from the {'reference' if feature not in reference else 'current'} sample")
        results.append(feature_drift(feature, reference[feature], current[feature], kind, alpha=alpha, min_samples=min_samples))
    tested = [i for i, r in enumerate(results) if r.status == "ok"]
    adjusted = correct([results[i].p_value for i in tested], correction)
    for i, p in zip(tested, adjusted, strict=True):
        results[i] = dataclasses.replace(results[i], p_value_corrected=p, drifted=p < alpha)
    return results
