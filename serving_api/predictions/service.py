"""The online path: resolve -> cached model -> validate features -> micro-batched predict ->
response shape -> durable prediction-log record (awaited before the response is sent).

Costs are bounded here: every row beyond the first is charged to the tenant's rate limit
(``charge_rows``); requests of more than ``offload_rows`` rows are validated and shaped in a
worker thread, never on the event loop (one row stays on the loop: no thread hop); explanations
are refused past ``explain_max_cost`` (rows x coalitions x background rows, 400) and run on their
own ``explain_workers`` threads, so they never hold the default pool that resolutions, loads and
stage changes use.

By entity: the model version's feature service (recorded at training) names the features; the
online store answers them for the entity rows; the model's signature features are taken from
that answer (never a null: an entity without stored values is a 422) and predicted as above.
"""

from __future__ import annotations

import asyncio
import functools
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from mlservice.inference.errors import FeatureValidationError
from mlservice.inference.loaded_model import LoadedModel
from mlservice.inference.validation import model_inputs
from resources.errors import InvalidRequest
from resources.predictions.records import Answer, PredictionRecorder
from serving_api.online.cache import ModelCache, Served
from serving_api.predictions.explanations import Explainer
from serving_api.predictions.outcome import RowsOutcome
from serving_api.predictions.responses import UNAVAILABLE_BY_ENTITY, prediction_fields, prediction_json
from serving_api.predictions.schemas import PredictionResponse

if TYPE_CHECKING:
    from resources.features.store import FeatureStoreResource
    from serving_api.auth import Principal
    from serving_api.predictions.deployed import DeployedPredictions
    from serving_api.predictions.schemas import PredictionRequest


IN_PROCESS = {"path": "in_process"}


def _plain(values: np.ndarray) -> list[Any]:
    return np.asarray(values).tolist()  # numpy scalars -> Python numbers and strings


def _lookup(
    feature_store: FeatureStoreResource, tenant_id: str, service: str, names: list[str], entities: list[dict[str, Any]],
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
    for index, (answer, entity) in enumerate(zip(answers, entities, strict=True)):
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


def _outcome(served: Served, rows: list[dict[str, Any]], predictions: np.ndarray, probabilities: Any) -> RowsOutcome:
    if probabilities is None:
        return RowsOutcome(served, _plain(predictions), None, None, rows)
    probabilities = np.asarray(probabilities, dtype=float)
    return RowsOutcome(served, _plain(predictions), probabilities.tolist(), probabilities.max(axis=1).tolist(), rows)


class PredictionService:
    def __init__(
        self, cache: ModelCache, recorder: PredictionRecorder, *, explainer: Explainer, feature_store: Any = None,
        rate_limiter: Any = None, offload_rows: int = 64, deployed: DeployedPredictions | None = None,
    ) -> None:
        self.cache, self.recorder, self.explainer, self.rate_limiter = cache, recorder, explainer, rate_limiter
        self.feature_store, self.offload_rows = feature_store, offload_rows  # the store: predictions by entity
        self.deployed = deployed  # requests that name a deployment_id

    def charge_rows(self, tenant_id: str, rows: int) -> None:
        """Charge the rows of a request to the tenant's rate limit (the request itself paid one)."""
        if rows > 1 and self.rate_limiter is not None:
            self.rate_limiter.check(tenant_id, cost=rows - 1)

    async def offload(self, rows: int, fn: Any, *args: Any) -> Any:
        """``fn(*args)`` on the event loop for small requests, in a predict thread for large ones."""
        if rows <= self.offload_rows:
            return fn(*args)
        return await self.off_loop(fn, *args)

    async def off_loop(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.cache.executor, functools.partial(fn, *args))

    async def answer(self, body: PredictionRequest, principal: Principal, request_id: str | None) -> Any:
        """A /api/v1/predictions request answered: rows charged, predicted (from the online store
        by entity), explained when asked and allowed, recorded, and shaped as the client asked."""
        started = time.perf_counter()
        tenant_id, n_rows = principal.tenant_id, body.row_count
        self.charge_rows(tenant_id, n_rows)
        # By entity, contributions (e.g. coef * (x - mean)) would reveal the stored values: only with features:read.
        sees_features = principal.has_scope("features:read")
        explain = body.options.return_explanation and (sees_features or not body.by_entity)
        if body.deployment_id is not None:
            if self.deployed is None:
                raise InvalidRequest("this API serves no deployments", {"deployment_id": body.deployment_id})
            return await self.deployed.answer(body, principal, request_id, explain=explain, started=started)
        if body.by_entity:
            outcome = await self.predict_entities(tenant_id, body.model_id, body.version, body.entity_rows(),
                                                  self.feature_store, explain=explain)
        else:
            outcome = await self.predict_rows(tenant_id, body.model_id, body.version, body.rows(), explain=explain)
        explanation = await self.explainer.explain(outcome) if explain else None
        if body.options.return_explanation and not explain:
            explanation = [UNAVAILABLE_BY_ENTITY] * n_rows
        latency_ms, logged_id = await self.record(outcome.answer(body.model_id), request_id=request_id,
                                                  tenant_id=tenant_id, subject=principal.subject, started=started)
        fields = dict(request_id=logged_id, model_id=body.model_id, version=outcome.served.model.version,
                      latency_ms=latency_ms, served_by=IN_PROCESS,
                      **prediction_fields(body, outcome, explanation, sees_features=sees_features))
        if n_rows <= self.offload_rows:
            return PredictionResponse(**fields)
        return await self.offload(n_rows, prediction_json, fields)

    async def predict_rows(
        self, tenant_id: str, model_id: str, version: str | None, rows: list[dict[str, Any]], *, explain: bool = False,
    ) -> RowsOutcome:
        served = await self.cache.get(tenant_id, model_id, version)
        return await self._predict(served, rows, explain)

    async def predict_entities(
        self, tenant_id: str, model_id: str, version: str | None, entities: list[dict[str, Any]],
        feature_store: FeatureStoreResource, *, explain: bool = False,
    ) -> RowsOutcome:
        """Predict from the online store's values of the model's feature service for each entity."""
        served = await self.cache.get(tenant_id, model_id, version)
        model = served.model
        service = self._feature_service(model)
        if explain:  # refused before the online store is read
            self.explainer.check(model, len(entities))
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

    async def _predict(self, served: Served, rows: list[dict[str, Any]], explain: bool = False) -> RowsOutcome:
        if explain:
            self.explainer.check(served.model, len(rows))
        if len(rows) <= self.offload_rows:  # the one-row path: no thread hop
            predictions, probabilities = await served.batcher.predict(model_inputs(served.model, rows))
            return _outcome(served, rows, predictions, probabilities)
        predictions, probabilities = await served.batcher.predict(await self.off_loop(model_inputs, served.model, rows))
        return await self.off_loop(_outcome, served, rows, predictions, probabilities)

    async def record(self, answer: Answer, *, request_id: str, tenant_id: str, subject: str | None,
                     started: float) -> tuple[float, str]:
        """The durable log record (``serving_api.predictions.outcome``): (latency ms, its request id)."""
        return await self.recorder.record(answer, request_id=request_id, tenant_id=tenant_id, subject=subject,
                                          started=started)
