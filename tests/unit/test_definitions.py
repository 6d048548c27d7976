"""The Dagster side loads: the one Definitions object resolves with its resources, and every job,
schedule and asset in it resolves by name (``defs.resolve_job_def(...)``): a job the API or a
schedule launches that no longer resolves, or resolves to other steps, fails here, not at launch."""

from __future__ import annotations

import dagster as dg

# The jobs launched by name (the API through GraphQL, the schedules) and the steps each runs.
JOBS = {
    "training": {"training_set", "trained_model"},
    "tuning": {"training_set", "tuned_model"},
    "feature_materialization": {"online_features"},
    "retention": {"apply_retention_op"},
    "drift_reports": {"drift_report"},
}
SCHEDULES = {"feature_materialization_hourly": "feature_materialization", "retention_daily": "retention",
             "drift_reports_hourly": "drift_reports"}


def test_definitions_load_and_resolve(definitions, tmp_path):
    repository = definitions.get_repository_def()
    assert {"state", "registry", "data_access"} <= set(repository.get_top_level_resources())
    registry = definitions.resources["registry"]
    assert registry.tracking_uri.endswith(str(tmp_path / "mlflow" / "mlflow.db"))


def test_every_job_resolves_by_name(definitions):
    for name, steps in JOBS.items():
        job = definitions.resolve_job_def(name)  # raises when the name does not resolve
        assert job.name == name and {node.name for node in job.graph.nodes} == steps, name
    names = {job.name for job in definitions.resolve_all_job_defs()}
    assert set(JOBS) <= names
    for name in names:  # asset jobs included (the implicit __ASSET_JOB too)
        assert definitions.resolve_job_def(name).graph.nodes, name


def test_every_schedule_sensor_and_asset_resolves(definitions):
    schedules = {schedule.name for schedule in definitions.schedules or []}
    assert schedules == set(SCHEDULES)
    for name, job_name in SCHEDULES.items():
        schedule = definitions.resolve_schedule_def(name)
        assert schedule.job_name == job_name and definitions.resolve_job_def(schedule.job_name).name == job_name
    assert {sensor.name for sensor in definitions.sensors or []} >= {"monitored_models"}
    for sensor in definitions.sensors or []:
        assert definitions.resolve_sensor_def(sensor.name).name == sensor.name
    keys = definitions.resolve_all_asset_keys()
    assert {key.to_user_string() for key in keys} >= {"training_set", "trained_model", "tuned_model", "online_features",
                                                      "feature_sources", "predictions", "drift_report"}
    for key in keys:
        assert key in definitions.resolve_assets_def(key).keys


def test_the_loop_is_one_lineage(definitions):
    """training_set -> trained_model / tuned_model -> predictions (observed) -> drift_report."""
    graph = definitions.resolve_asset_graph()

    def parents(name: str) -> set[str]:
        return {key.to_user_string() for key in graph.get(dg.AssetKey(name)).parent_keys}

    assert parents("trained_model") == {"training_set"} and parents("tuned_model") == {"training_set"}
    assert parents("predictions") == {"trained_model", "tuned_model"}
    assert parents("drift_report") == {"predictions"}
    assert graph.get(dg.AssetKey("predictions")).is_observable
    assert {spec.name for spec in graph.get(dg.AssetKey("drift_report")).check_keys} == {"no_drift"}
