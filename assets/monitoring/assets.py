"""Monitoring assets: the loop from serving back to training, as lineage in the Dagster UI.

``training_set -> trained_model / tuned_model -> predictions -> drift_report``: ``predictions`` is
the prediction log, observed (not materialized: the API writes it), downstream of the models it
serves; ``drift_report`` is partitioned by model (``<tenant>:<model_id>``, added by the
``monitored_models`` sensor) and computed by the same code as the API's drift endpoint
(``mlservice.monitoring.reporting``). Its check ``no_drift`` shows in the UI beside each report; every report
is kept (``drift_reports`` table, ``GET /monitoring/{model_id}/drift/history``), and the
``retrain_on_drift`` sensor reads them.
"""

import dagster as dg

from resources.dagster_resources import ModelRegistry, StateStore
from resources.monitoring.drift_history import DriftReportStore
from resources.monitoring.drift_job_spec import MONITORED_MODELS, DriftReportConfig, parse_monitored_key

monitored_models = dg.DynamicPartitionsDefinition(name=MONITORED_MODELS)


@dg.multi_observable_source_asset(
    specs=[dg.AssetSpec("predictions", deps=["trained_model", "tuned_model"], group_name="monitoring",
                        description="The prediction log: every answered prediction of every model (written by the API)")],
    required_resource_keys={"state"},
)
def predictions(context: dg.AssetExecutionContext):
    """Observed: the log's newest record id is its data version (a new record, a new version)."""
    import sqlalchemy as sa

    from resources.predictions.log import prediction_log as t

    with context.resources.state.engine.connect() as conn:
        newest, = conn.execute(sa.select(sa.func.max(t.c.id))).one()
    yield dg.ObserveResult(asset_key="predictions", data_version=dg.DataVersion(str(newest or 0)),
                           metadata={"newest_record_id": int(newest or 0)})


@dg.asset(
    partitions_def=monitored_models,
    deps=["predictions"],
    group_name="monitoring",
    check_specs=[dg.AssetCheckSpec("no_drift", asset="drift_report",
                                   description="No feature of the production version drifted in the report's window")],
    description="Drift of a model's production version: its traffic in the window against its reference sample",
)
def drift_report(context: dg.AssetExecutionContext, config: DriftReportConfig, registry: ModelRegistry,
                 state: StateStore) -> dg.MaterializeResult:
    from datetime import UTC, datetime

    from mlservice.monitoring.reporting import scheduled_drift

    tenant_id, model_id = parse_monitored_key(context.partition_key)
    outcome = scheduled_drift(registry, state, tenant_id, model_id, now=datetime.now(UTC), window_hours=config.window_hours,
                              alpha=config.alpha, correction=config.correction)
    report_id = DriftReportStore(state).add(tenant_id, model_id, status=outcome.status, report=outcome.report,
                                            version=outcome.version, window=outcome.window, source="schedule",
                                            dagster_run_id=context.run_id)
    report = outcome.report or {}
    drifted = sorted(name for name, r in (report.get("results") or {}).items() if r.get("drifted"))
    metadata = {"report_id": report_id, "status": outcome.status, "version": outcome.version or "",
                "window_start": outcome.window[0].isoformat(), "window_end": outcome.window[1].isoformat()}
    if outcome.status == "ok":
        metadata.update(features_checked=report["features_checked"], features_drifted=report["features_drifted"],
                        drifted=", ".join(drifted), current_rows=report["current"]["rows"])
    else:
        metadata["reason"] = str(report.get("message", ""))
    check = dg.AssetCheckResult(
        check_name="no_drift", asset_key="drift_report",
        passed=outcome.status != "ok" or not report["overall_drift"],
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"status": outcome.status, "drifted": ", ".join(drifted), "report_id": report_id},
    )
    return dg.MaterializeResult(metadata=metadata, check_results=[check])
