"""A drift report: a version's reference sample against a window of its traffic, per feature.

The same function serves the API (``GET /monitoring/{model_id}/drift``) and the Dagster
``drift_report`` asset, so a report read in the UI and one fetched over HTTP are computed alike.
Which test for which feature comes from the version's signature: numeric columns get the
two-sample Kolmogorov-Smirnov test, booleans and strings the chi-square test on category counts
(``mlservice.monitoring.drift_stats``). p-values are corrected across the features tested in one report
(default Benjamini-Hochberg) and a feature drifts when its corrected p-value is below ``alpha``.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from mlservice.monitoring.drift_stats import CORRECTIONS, DEFAULT_CORRECTION, MIN_SAMPLES, drift_results
from resources.errors import InsufficientData, InvalidRequest, ReferenceNotFound

if TYPE_CHECKING:
    import pandas as pd

    from mlservice.inference.signature import FeatureSpec
    from mlservice.monitoring.traffic_window import CurrentSample

DEFAULT_ALPHA = 0.05


def feature_kind(spec: FeatureSpec) -> str:
    from mlservice.inference.signature import NUMERIC_TYPES

    return "numeric" if spec.type in NUMERIC_TYPES else "categorical"


def select_features(signature: list[FeatureSpec], requested: list[str] | None) -> list[FeatureSpec]:
    """The requested features in the signature's order (default: all); 400 naming any unknown."""
    if not requested:
        return list(signature)
    known = {spec.name: spec for spec in signature}
    unknown = [name for name in requested if name not in known]
    if unknown:
        raise InvalidRequest(f"unknown feature(s) for this version: {', '.join(unknown)}",
                             {"unknown": unknown, "features": list(known)})
    wanted = set(requested)
    return [spec for spec in signature if spec.name in wanted]


def check_parameters(alpha: float, correction: str) -> None:
    if not 0 < alpha < 1:
        raise InvalidRequest("alpha must be between 0 and 1 (exclusive)", {"alpha": alpha})
    if correction not in CORRECTIONS:
        raise InvalidRequest(f"correction must be one of {', '.join(CORRECTIONS)}", {"correction": correction})


def drift_report(*, model_id: str, version: str, features: list[FeatureSpec], reference: pd.DataFrame,
                 reference_source: str, current: CurrentSample, alpha: float = DEFAULT_ALPHA,
                 correction: str = DEFAULT_CORRECTION, min_samples: int = MIN_SAMPLES) -> dict[str, Any]:
    """The report as the API answers it: the reference's fields (``overall_drift``,
    ``features_checked``, ``features_drifted``, ``results`` with ``drifted``, ``statistic``,
    ``p_value``, ``method`` per feature) and, beside them, the corrected p-value, PSI, normalised
    Wasserstein distance, sample sizes and status per feature, the window, the version and the
    parameters used."""
    check_parameters(alpha, correction)
    missing = [spec.name for spec in features if spec.name not in reference.columns]
    if len(missing) == len(features):
        raise ReferenceNotFound(f"the reference sample of version {version} holds none of the requested features",
                                {"model_id": model_id, "version": version, "missing": missing})
    tested = [spec for spec in features if spec.name in reference.columns]
    results = drift_results(
        {spec.name: reference[spec.name].to_numpy() for spec in tested},
        {spec.name: current.columns[spec.name] for spec in tested},
        {spec.name: feature_kind(spec) for spec in tested},
        alpha=alpha, correction=correction, min_samples=min_samples,
    )
    checked = [r for r in results if r.status == "ok"]
    if not checked:
        sizes = {r.feature: {"reference": r.reference_size, "current": r.current_size} for r in results}
        raise InsufficientData(
            f"too little data to test drift: every feature needs at least {min_samples} values in the reference and in the "
            f"window (the window held {current.rows} rows)", {"minimum": min_samples, "sizes": sizes, "current_rows": current.rows})
    by_feature = {r.feature: _result(r) for r in results}
    for name in missing:
        by_feature[name] = {"drifted": False, "statistic": None, "p_value": None, "method": None, "status": "no_reference"}
    drifted = sum(1 for r in checked if r.drifted)
    return {
        "model_id": model_id,
        "overall_drift": drifted > 0,
        "features_checked": len(checked),
        "features_drifted": drifted,
        "results": {spec.name: by_feature[spec.name] for spec in features},
        "version": version,
        "alpha": alpha,
        "correction": correction,
        "window": {"start": current.start.isoformat(), "end": current.end.isoformat()},
        "reference": {"source": reference_source, "rows": len(reference)},
        "current": {"rows": current.rows, "records": current.records, "sampled": current.sampled,
                    "skipped_records": current.skipped_records},
    }


def _result(r: Any) -> dict[str, Any]:
    values = asdict(r)
    values.pop("feature", None)
    ordered = {key: values.pop(key) for key in ("drifted", "statistic", "p_value", "method")}
    return {**ordered, **values}
