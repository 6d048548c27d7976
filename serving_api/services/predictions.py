"""The online path: resolve -> cached model -> validate features -> micro-batched predict ->
response shape -> durable prediction-log record (awaited before the response is sent).

By entity: the model version's feature service (recorded at training) names the features; the
online store answers them for the entity rows; the model's signature features are taken from
that answer (never a null: an entity without stored values is a 422) and predicted as above.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from serving_api.inference.cache import ModelCache, Served
from serving_api.inference.loaded import LoadedModel
from serving_api.inference.validation import FeatureValidationError, model_inputs, to_frame

if TYPE_CHECKING:
    from resources.feature_store import FeatureStoreResource

# Shapley sampling (models with more than 10 features): 32 antithetic permutations keep an
# explanation near 80 ms for a 100-tree forest with 30 features; the sum stays exact.
SAMPLED_PERMUTATIONS = 32


@dataclass
class RowsOutcome:
    served: Served
    prediction: list[Any]
    probabilities: list[list[float]] | None
    confidence: list[float] | None
    rows: list[dict[str, Any]]
    entities: list[dict[str, Any]] | None = None  # by entity: the join keys of each row
    feature_service: str | None = None


def _plain(values: np.ndarray) -> list[Any]:
    return np.asarray(values).tolist()  # numpy scalars -> Python numbers and strings


def _lookup(
    feature_store: "FeatureStoreResource", tenant_id: str, service: str, names: list[str], entities: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """The online answers of ``service`` for the entities, after checking that the service holds
    every feature the model takes (blocking: the first call of a tenant imports Feast)."""
    served = {ref.partition(":")[2] for ref in feature_store.service_refs(tenant_id, service)}
    absent = [name for name in names if name not in served]
    if absent:
        raise FeatureValidationError(
            f"feature service '{service}' lacks feature(s) the model takes: {', '.join(absent)}",
            {"feature_service": service, "absent": absent, "service_features": sorted(served)},
        )
    return feature_store.online_features_for_service(tenant_id, service, entities)


def _model_rows(
    answers: list[dict[str, Any]], names: list[str], service: str, entities: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """The model's features of each answer; a 422 listing every feature without a stored value."""
    problems = []
    for index, (answer, entity) in enumerate(zip(answers, entities)):
        where = {} if len(answers) == 1 else {"instance": index}
        for name in names:
            if answer[name] is None:
                problems.append({**where, "entity": entity, "feature": name, "problem": "no stored value in the online store"})
    if problems:
        raise FeatureValidationError(
            f"the online store has no value for some features of feature service '{service}': "
            f"send 'features' instead, or materialize the entity's features",
            {"feature_service": service, "missing": sorted({p["feature"] for p in problems}), "problems": problems},
        )
    return [{name: answer[name] for name in names} for answer in answers]


class PredictionService:
    def __init__(self, cache: ModelCache, log: Any) -> None:
        self.cache, self.log = cache, log

    async def predict_rows(self, tenant_id: str, model_id: str, version: str | None, rows: list[dict[str, Any]]) -> RowsOutcome:
        served = await self.cache.get(tenant_id, model_id, version)
        return await self._predict(served, rows)

    async def predict_entities(
        self, tenant_id: str, model_id: str, version: str | None, entities: list[dict[str, Any]],
        feature_store: "FeatureStoreResource",
    ) -> RowsOutcome:
        """Predict from the online store's values of the model's feature service for each entity."""
        served = await self.cache.get(tenant_id, model_id, version)
        model = served.model
        service = self._feature_service(model)
        answers = await asyncio.to_thread(_lookup, feature_store, tenant_id, service, model.feature_names, entities)
        rows = _model_rows(answers, model.feature_names, service, entities)
        outcome = await self._predict(served, rows)
        outcome.entities, outcome.feature_service = entities, service
        return outcome

    @staticmethod
    def _feature_service(model: LoadedModel) -> str:
        """The feature service the version was trained from (a version tag set when it was
        registered), or a 422."""
        if model.feature_service is None:
            raise FeatureValidationError(
                f"model version {model.version} was not trained from a feature service, so it cannot predict by "
                f"entity: send 'features' instead",
                {"model_id": model.model_id, "version": model.version},
            )
        return model.feature_service

    async def _predict(self, served: Served, rows: list[dict[str, Any]]) -> RowsOutcome:
        inputs = model_inputs(served.model, rows)
        predictions, probabilities = await served.batcher.predict(inputs)
        if probabilities is None:
            return RowsOutcome(served, _plain(predictions), None, None, rows)
        probabilities = np.asarray(probabilities, dtype=float)
        return RowsOutcome(served, _plain(predictions), probabilities.tolist(), probabilities.max(axis=1).tolist(), rows)

    async def explain(self, outcome: RowsOutcome) -> list[dict[str, Any]]:
        from serving_api.inference.explain import explain

        model = outcome.served.model
        if model.estimator is None:
            return [{"method": "unavailable", "reason": "explanations need a scikit-learn model"}]
        results = []
        frame = to_frame(outcome.rows, model.features)
        for index in range(len(frame)):
            row = frame.iloc[[index]]
            try:
                explanation = await asyncio.to_thread(
                    explain, model.estimator, row, model_type=model.model_type, classes=model.classes or None,
                    background=model.background, n_samples=SAMPLED_PERMUTATIONS,
                )
            except ValueError as exc:  # e.g. a non-linear model logged without an input example
                results.append({"method": "unavailable", "reason": str(exc)})
                continue
            results.append(explanation.to_dict())
        return results

    async def log_prediction(
        self, *, request_id: str, tenant_id: str, model_id: str, version: str, rows: list[dict[str, Any]],
        outputs: dict[str, Any], started: float, ensemble_id: str | None = None, subject: str | None = None,
    ) -> tuple[float, str]:
        """Write the durable record; returns (latency_ms, the request id the record carries).

        A client may send the same X-Request-ID twice: the second record gets a unique suffix
        (and so does that response's body), so every 200 still has exactly one record.
        """
        import sqlalchemy as sa

        latency_ms = round((time.perf_counter() - started) * 1000, 3)
        fields = dict(tenant_id=tenant_id, subject=subject, model_id=model_id, model_version=version, ensemble_id=ensemble_id,
                      latency_ms=latency_ms, features=rows, outputs=outputs)
        try:
            await self.log.record(request_id=request_id, **fields)
        except sa.exc.IntegrityError:
            request_id = f"{request_id}~{uuid.uuid4().hex[:8]}"
            await self.log.record(request_id=request_id, **fields)
        return latency_ms, request_id
