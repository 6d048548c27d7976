"""Ensembles: creation checks (members exist and agree) and prediction with partial failure.

Methods: ``voting_soft`` (weighted mean of class probabilities), ``voting_hard`` (weighted
majority of predicted labels; probabilities are the weighted vote shares), ``averaging``
(weighted mean, regression). Weights are normalised over the members that answered.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np

from mlservice.inference.errors import FeatureValidationError
from mlservice.inference.validation import model_inputs
from resources.errors import DomainError, InvalidRequest, ModelNotFound, VersionNotFound
from resources.models.ensembles import EnsembleRecord, EnsembleStore
from resources.predictions.records import Answer
from resources.tenants.quotas import TenantQuotas
from serving_api.auth import Principal
from serving_api.predictions.schemas import EnsemblePredictionResponse, FeatureRows
from serving_api.predictions.service import PredictionService


class EnsembleIncompatible(DomainError):
    code = "VALIDATION_ERROR"


class EnsembleUnavailable(DomainError):
    code = "ENSEMBLE_UNAVAILABLE"


METHOD_TYPES = {"voting_soft": "classification", "voting_hard": "classification", "averaging": "regression"}


class EnsembleService:
    def __init__(
        self, store: EnsembleStore, predictions: PredictionService, quotas: TenantQuotas | None = None,
    ) -> None:
        # the prediction service: its cache, row charges, off-loop validation and the prediction log
        self.store, self.predictions, self.cache, self.quotas = store, predictions, predictions.cache, quotas

    async def create(self, tenant_id: str, actor: str, body: Any) -> EnsembleRecord:
        if self.quotas is not None:  # 409 QUOTA_EXCEEDED before any member is loaded
            self.quotas.check(tenant_id, "ensembles", lambda _: self.store.count(tenant_id))
        if any(m.weight <= 0 for m in body.models):
            raise InvalidRequest("member weights must be positive", {"weights": [m.weight for m in body.models]})
        problems, kinds, class_sets, missing = [], {}, {}, []
        for member in body.models:
            try:
                served = await self.cache.get(tenant_id, member.model_id, member.version)
            except (ModelNotFound, VersionNotFound) as exc:
                missing.append(exc)
                continue
            kinds[member.model_id] = served.model.model_type
            class_sets[member.model_id] = [str(c) for c in served.model.classes]
        if missing:  # 404 naming every member that is not there (a model first: MODEL_NOT_FOUND, else VERSION_NOT_FOUND)
            first = next((exc for exc in missing if isinstance(exc, ModelNotFound)), missing[0])
            first.message = "ensemble member(s) not found: " + "; ".join(exc.message for exc in missing)
            first.details = {**(first.details or {}), "missing": [exc.details for exc in missing]}
            raise first
        wanted = METHOD_TYPES[body.method]
        for model_id, kind in kinds.items():
            if kind != wanted:
                problems.append({"model_id": model_id, "problem": f"is a {kind} model; method {body.method} needs {wanted}"})
        if wanted == "classification" and len({tuple(c) for c in class_sets.values()}) > 1:
            problems.append({"problem": "members predict different classes", "classes": class_sets})
        if problems:
            raise EnsembleIncompatible("ensemble members are incompatible", {"problems": problems})
        total = sum(m.weight for m in body.models)
        members = [{"model_id": m.model_id, "version": m.version, "weight": m.weight / total} for m in body.models]
        classes = next(iter(class_sets.values()), None) if wanted == "classification" else None
        return self.store.create(
            tenant_id, created_by=actor, name=body.name, method=body.method, members=members,
            parallel_inference=body.parallel_inference, fail_on_partial=body.fail_on_partial,
            min_models_required=body.min_models_required, timeout_ms=body.timeout_ms, model_type=wanted, classes=classes,
        )

    async def _member(self, tenant_id: str, member: dict, rows: list[dict], timeout_s: float) -> dict[str, Any]:
        started = time.perf_counter()
        result: dict[str, Any] = {"model_id": member["model_id"], "version": member["version"], "weight": member["weight"]}
        try:
            async def run():
                served = await self.cache.get(tenant_id, member["model_id"], member["version"])
                result["version"] = served.model.version
                inputs = await self.predictions.offload(len(rows), model_inputs, served.model, rows)
                return served, await served.batcher.predict(inputs)

            served, (predictions, probabilities) = await asyncio.wait_for(run(), timeout_s)
            result.update(status="ok", predictions=predictions, probabilities=probabilities, classes=served.model.classes)
        except TimeoutError:
            result.update(status="timeout", error=f"no answer within {timeout_s * 1000:.0f} ms")
        except FeatureValidationError as exc:
            result.update(status="failed", error=exc.message, input_error=True, details=exc.details)
        except Exception as exc:
            result.update(status="failed", error=getattr(exc, "message", None) or type(exc).__name__)
        result["latency_ms"] = round((time.perf_counter() - started) * 1000, 3)
        return result

    async def answer(self, ensemble_id: str, body: FeatureRows, principal: Principal, request_id: str | None) -> Any:
        """A predict request answered: rows charged, members predicted and combined, recorded."""
        started = time.perf_counter()
        ensemble = self.store.get(principal.tenant_id, ensemble_id)
        rows = body.rows()
        self.predictions.charge_rows(principal.tenant_id, len(rows))
        outcome = await self.predict(principal.tenant_id, ensemble, rows)
        answer = Answer(ensemble_id, "ensemble", rows, outcome["prediction"], outcome["probabilities"],
                        outcome["confidence"], members=outcome["members"], ensemble_id=ensemble_id)
        latency_ms, logged_id = await self.predictions.record(answer, request_id=request_id, tenant_id=principal.tenant_id,
                                                              subject=principal.subject, started=started)
        if outcome["confidence"] is not None and body.features is not None:
            outcome["confidence"] = outcome["confidence"][0]
        if not body.options.return_probabilities:
            outcome["probabilities"] = None
        return EnsemblePredictionResponse(request_id=logged_id, ensemble_id=ensemble_id, method=ensemble.method,
                                          latency_ms=latency_ms, **outcome)

    async def predict(self, tenant_id: str, ensemble: EnsembleRecord, rows: list[dict]) -> dict[str, Any]:
        timeout_s = ensemble.timeout_ms / 1000
        if ensemble.parallel_inference:
            results = await asyncio.gather(*(self._member(tenant_id, m, rows, timeout_s) for m in ensemble.members))
        else:
            results = [await self._member(tenant_id, m, rows, timeout_s) for m in ensemble.members]
        ok = [r for r in results if r["status"] == "ok"]
        failed = [r for r in results if r["status"] != "ok"]
        summary = [{k: r.get(k) for k in ("model_id", "version", "weight", "status", "latency_ms", "error")} for r in results]
        if (failed and ensemble.fail_on_partial) or len(ok) < ensemble.min_models_required:
            details = {"members": summary, "succeeded": len(ok), "min_models_required": ensemble.min_models_required}
            if failed and all(r.get("input_error") for r in failed):
                raise FeatureValidationError("features do not fit the ensemble's members", details)
            raise EnsembleUnavailable("not enough ensemble members answered", details)
        combined = self._combine(ensemble, ok)
        return {**combined, "members": summary}

    @staticmethod
    def _combine(ensemble: EnsembleRecord, ok: list[dict]) -> dict[str, Any]:
        weights = np.array([r["weight"] for r in ok], dtype=float)
        weights = weights / weights.sum()
        if ensemble.method == "averaging":
            values = np.stack([np.asarray(r["predictions"], dtype=float) for r in ok])
            return {"prediction": [float(v) for v in weights @ values], "probabilities": None, "confidence": None}
        classes = list(ok[0]["classes"])
        if ensemble.method == "voting_soft":
            proba = sum(w * np.asarray(r["probabilities"], dtype=float) for w, r in zip(weights, ok, strict=True))
        else:
            proba = np.zeros((len(ok[0]["predictions"]), len(classes)))
            for w, r in zip(weights, ok, strict=True):
                for row, label in enumerate(r["predictions"]):
                    proba[row, classes.index(label.item() if hasattr(label, "item") else label)] += w
        labels = [classes[i] for i in proba.argmax(axis=1)]
        return {
            "prediction": [c.item() if hasattr(c, "item") else c for c in labels],
            "probabilities": [[float(p) for p in row] for row in proba],
            "confidence": [float(p) for p in proba.max(axis=1)],
        }
