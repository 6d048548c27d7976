"""The API application: ``create_app(settings)`` builds it; the lifespan owns the clients.

Run with ``uvicorn serving_api.main:create_app --factory`` (``mlservice api`` does this).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from mlservice.config.settings import Settings, get_settings
from mlservice.config.wiring import build_feature_store, build_quotas, build_registry, build_state_store
from resources.deployments.store import DeploymentStore
from resources.features.revisions import FeatureDefinitionStore
from resources.models.change_counters import generations_for
from resources.models.ensembles import EnsembleStore
from resources.predictions.log import PredictionLog
from resources.predictions.records import PredictionRecorder
from resources.tenants.audit import AuditLog
from serving_api.auth import TokenVerifier
from serving_api.batch import routes as batch
from serving_api.deployments import routes as deployments
from serving_api.deployments.service import DeploymentService
from serving_api.deps import known_query_names
from serving_api.docs import install_docs
from serving_api.ensembles import routes as ensembles
from serving_api.ensembles.service import EnsembleService
from serving_api.errors import install_error_handlers
from serving_api.features import routes as features
from serving_api.features.definitions import FeatureDefinitionService
from serving_api.health import routes as health
from serving_api.heap import freeze_long_lived
from serving_api.jobs import routes as jobs
from serving_api.jobs.service import JobService
from serving_api.metrics import ApiMetrics
from serving_api.middleware import RequestContextMiddleware
from serving_api.models import routes as models
from serving_api.models.service import ModelService
from serving_api.monitoring import routes as monitoring
from serving_api.monitoring.service import MonitoringService
from serving_api.oip import routes as oip
from serving_api.online.arrivals import Arrivals
from serving_api.online.cache import ModelCache
from serving_api.openapi import install_openapi
from serving_api.predictions import routes as predictions
from serving_api.predictions.deployed import DeployedPredictions
from serving_api.predictions.explanations import Explainer
from serving_api.predictions.service import PredictionService
from serving_api.ratelimit.local import RateLimiter
from serving_api.ratelimit.shared import RedisRateLimiter
from serving_api.training import routes as training
from serving_api.tuning import routes as tuning

log = logging.getLogger("mlservice.api")

# MLflow's HTTP client retries for minutes by default; an API must fail over to a 503 promptly:
# one retry (a pooled connection the server closed), 5 s a read. On a server that does not answer,
# the first call fails within ~11 s (5 + 1 + 5) and the breaker (resources/infra/breaker.py) fails the next at once.
_MLFLOW_CLIENT_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
    "MLFLOW_DISABLE_TELEMETRY": "true",
}


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    state = build_state_store(settings, serving=True)
    audit = AuditLog(state)
    metrics = ApiMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for key, value in _MLFLOW_CLIENT_DEFAULTS.items():
            os.environ.setdefault(key, value)
        app.state.verifier = TokenVerifier(settings)  # refuses to start without a key
        _ = state.engine  # create tables now rather than on the first request
        app.state.feature_store.import_feast()
        audit.start()
        prediction_log.start()
        warming = asyncio.get_running_loop().create_task(model_cache.warm_production()) if settings.warm_models else None
        freeze_long_lived()
        try:
            yield
        finally:
            if warming is not None:
                warming.cancel()
            prediction_log.close()
            explainer.close()
            if app.state.prediction_service.deployed is not None:
                await app.state.prediction_service.deployed.close()
            model_cache.close()
            audit.close()
            state.dispose()

    app = FastAPI(
        title="mlservice",
        version="0.1.0",
        description="Multi-tenant ML platform API. Every /api/v1 route needs a JWT bearer token.",
        lifespan=lifespan,
        docs_url=None, redoc_url=None,  # served by serving_api.docs from local files, not a CDN
        dependencies=[Depends(known_query_names)],
    )
    app.state.settings = settings
    app.state.state_store = state
    app.state.audit = audit
    app.state.metrics = metrics
    app.state.rate_limiter = RedisRateLimiter(settings, settings.redis_url) if settings.redis_url else RateLimiter(settings)
    app.state.registry = build_registry(settings, state)
    arrivals = app.state.arrivals = Arrivals()  # prediction requests on their way to a batcher (the middleware counts them)
    model_cache = app.state.model_cache = ModelCache(
        app.state.registry, max_models=settings.model_cache_max_models, max_bytes=settings.model_cache_max_bytes,
        max_batch=settings.batch_max_size, max_wait_ms=settings.batch_max_wait_ms,
        tenant_max_models=settings.model_cache_tenant_max_models, tenant_max_bytes=settings.model_cache_tenant_max_bytes,
        negative_ttl_s=settings.negative_cache_s,
        generations=generations_for(settings.redis_url) if settings.redis_url else None, arrivals=arrivals,
    )
    app.state.feature_store = build_feature_store(settings)
    # commits group by themselves (max_wait_s=0); the lifespan starts and closes the writer
    prediction_log = PredictionLog(state, max_wait_s=0, max_payload_bytes=settings.prediction_log_max_payload_bytes)
    explainer = Explainer(max_cost=settings.explain_max_cost, workers=settings.explain_workers)
    app.state.prediction_log = prediction_log
    app.state.prediction_service = PredictionService(
        model_cache, PredictionRecorder(prediction_log), explainer=explainer, feature_store=app.state.feature_store,
        rate_limiter=app.state.rate_limiter, offload_rows=settings.offload_rows,
        deployed=DeployedPredictions(DeploymentStore(state), settings.effective_serve_url),
    )
    app.state.ensemble_service = EnsembleService(EnsembleStore(state), app.state.prediction_service,
                                                 quotas=build_quotas(settings))
    app.state.model_service = ModelService(app.state.registry, model_cache)
    app.state.job_service = JobService.from_settings(settings, state, app.state.registry)
    app.state.deployment_service = DeploymentService(DeploymentStore(state), app.state.job_service)
    app.state.feature_definitions = FeatureDefinitionService(
        app.state.feature_store, FeatureDefinitionStore(state), app.state.job_service.policy, app.state.registry)
    app.state.monitoring_service = MonitoringService(app.state.registry, state, model_cache, app.state.job_service.policy)
    install_error_handlers(app)
    install_docs(app)
    install_openapi(app)
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.max_body_bytes, metrics=metrics, audit=audit,
                       arrivals=arrivals)
    app.include_router(health.router)
    for router in (models.router, batch.router, predictions.router, ensembles.router, training.router, tuning.router,
                   jobs.router, features.router, oip.router, monitoring.router, deployments.router):
        app.include_router(router)
    return app
