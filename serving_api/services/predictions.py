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
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from resources.errors import InvalidRequest
from serving_api.inference.bounds import explanation_cost
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


def _outcome(served: Served, rows: list[dict[str, Any]], predictions: np.ndarray, probabilities: Any) -> RowsOutcome:
    if probabilities is None:
        return RowsOutcome(served, _plain(predictions), None, None, rows)
    probabilities = np.asarray(probabilities, dtype=float)
    return RowsOutcome(served, _plain(predictions), probabilities.tolist(), probabilities.max(axis=1).tolist(), rows)


class PredictionService:
    def __init__(
        self, cache: ModelCache, log: Any, *, rate_limiter: Any = None, explain_max_cost: int = 2_000_000,
        explain_workers: int = 1, offload_rows: int = 64,
    ) -> None:
        self.cache, self.log, self.rate_limiter = cache, log, rate_limiter
        self.explain_max_cost, self.explain_workers, self.offload_rows = explain_max_cost, explain_workers, offload_rows
        self._explain_executor: ThreadPoolExecutor | None = None

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

    async def predict_rows(
        self, tenant_id: str, model_id: str, version: str | None, rows: list[dict[str, Any]], *, explain: bool = False,
    ) -> RowsOutcome:
        served = await self.cache.get(tenant_id, model_id, version)
        return await self._predict(served, rows, explain)

    async def predict_entities(
        self, tenant_id: str, model_id: str, version: str | None, entities: list[dict[str, Any]],
        feature_store: "FeatureStoreResource", *, explain: bool = False,
    ) -> RowsOutcome:
        """Predict from the online store's values of the model's feature service for each entity."""
        served = await self.cache.get(tenant_id, model_id, version)
        model = served.model
        service = self._feature_service(model)
        if explain:  # refused before the online store is read
            self.check_explanation(model, len(entities))
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
            self.check_explanation(served.model, len(rows))
        if len(rows) <= self.offload_rows:  # the one-row path: no thread hop
            predictions, probabilities = await served.batcher.predict(model_inputs(served.model, rows))
            return _outcome(served, rows, predictions, probabilities)
        predictions, probabilities = await served.batcher.predict(await self.off_loop(model_inputs, served.model, rows))
        return await self.off_loop(_outcome, served, rows, predictions, probabilities)

    def check_explanation(self, model: LoadedModel, rows: int) -> None:
        """400 when explaining ``rows`` rows of ``model`` would cost more than the bound."""
        cost = explanation_cost(model, rows, SAMPLED_PERMUTATIONS)
        if cost.total > self.explain_max_cost:
            raise InvalidRequest(
                f"explanation cost {cost.total:,} (rows {cost.rows} x coalitions {cost.coalitions:,} x background rows "
                f"{cost.background_rows}) exceeds the bound of {self.explain_max_cost:,}: explain fewer rows",
                {"explanation_cost": cost.total, "max_explanation_cost": self.explain_max_cost, "rows": cost.rows,
                 "coalitions": cost.coalitions, "background_rows": cost.background_rows},
            )

    @property
    def explain_executor(self) -> ThreadPoolExecutor:
        if self._explain_executor is None:
            self._explain_executor = ThreadPoolExecutor(max_workers=self.explain_workers, thread_name_prefix="explain")
        return self._explain_executor

    def close(self) -> None:
        if self._explain_executor is not None:
            self._explain_executor.shutdown(wait=False, cancel_futures=True)
            self._explain_executor = None

    async def explain(self, outcome: RowsOutcome) -> list[dict[str, Any]]:
        from serving_api.inference.explain import explain

        model = outcome.served.model
        if model.estimator is None:
            return [{"method": "unavailable", "reason": "explanations need a scikit-learn model"}]
        results = []
        frame = to_frame(outcome.rows, model.features)
        loop = asyncio.get_running_loop()
        per_row = self.explain_max_cost // max(1, len(frame))  # also bounds a linear model that falls back to Shapley
        for index in range(len(frame)):
            row = frame.iloc[[index]]
            try:
                explanation = await loop.run_in_executor(self.explain_executor, functools.partial(
                    explain, model.estimator, row, model_type=model.model_type, classes=model.classes or None,
                    background=model.background, n_samples=SAMPLED_PERMUTATIONS, max_cost=per_row,
                ))
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

        Records are keyed by (tenant, request id), so another tenant's use of an id is never seen.
        A tenant that sends the same X-Request-ID twice gets a unique suffix on the second record
        (and that response's body), cut to fit the 128-character column; the id as sent is kept
        in ``client_request_id``. Every 200 still has exactly one record.
        """
        import sqlalchemy as sa

        latency_ms = round((time.perf_counter() - started) * 1000, 3)
        fields = dict(tenant_id=tenant_id, subject=subject, model_id=model_id, model_version=version, ensemble_id=ensemble_id,
                      latency_ms=latency_ms, features=rows, outputs=outputs, client_request_id=request_id)
        logged_id = request_id
        for attempt in range(3):  # a suffix that clashes too (odds 2**-32) takes another
            try:
                await self.log.record(request_id=logged_id, **fields)
                break
            except sa.exc.IntegrityError:
                if attempt == 2:
                    raise
                logged_id = f"{request_id[:128 - 9]}~{uuid.uuid4().hex[:8]}"
        return latency_ms, logged_id
