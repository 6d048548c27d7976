"""Response bodies of online predictions: what a client asked to see of an answer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import Response

from serving_api.predictions.schemas import PredictionResponse

if TYPE_CHECKING:
    from serving_api.predictions.outcome import RowsOutcome
    from serving_api.predictions.schemas import PredictionRequest

UNAVAILABLE_BY_ENTITY = {"method": "unavailable", "reason": "explanations of predictions by entity need the "
                         "features:read scope (they would reveal the stored feature values)"}


def prediction_fields(
    body: PredictionRequest, outcome: RowsOutcome, explanation: list[dict[str, Any]] | None, *, sees_features: bool,
) -> dict[str, Any]:
    """The response fields of a prediction (scalars for one row asked, lists for several); by
    entity, the stored values (``features``) only for a token that may read features."""
    single = body.single
    fields: dict[str, Any] = {
        "prediction": outcome.prediction,
        "probabilities": outcome.probabilities if body.options.return_probabilities else None,
        "confidence": (outcome.confidence[0] if single else outcome.confidence) if outcome.confidence else None,
        "explanation": (explanation[0] if single else explanation) if explanation is not None else None,
    }
    if outcome.entities is not None:
        fields.update({"entity": outcome.entities[0]} if single else {"entities": outcome.entities},
                      feature_service=outcome.feature_service)
        if sees_features:
            fields["features"] = outcome.rows[0] if single else outcome.rows
    return fields


def prediction_json(fields: dict[str, Any]) -> Response:
    """The response serialised here (in a worker thread, for large answers)."""
    return Response(PredictionResponse(**fields).model_dump_json(), media_type="application/json")
