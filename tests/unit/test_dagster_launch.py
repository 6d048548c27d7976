"""Dagster refusing a run configuration the platform built is the platform's fault: 500
JOB_LAUNCH_FAILED with Dagster's reasons, never the caller's 400 (against a scripted GraphQL
endpoint over real HTTP; the integration tier launches against the real webserver)."""

from __future__ import annotations

import pytest

from resources.infra.dagster_runs import DagsterRuns, LaunchFailed
from serving_api.errors import STATUS_BY_CODE
from tests.utils.fakes import ScriptedHTTPServer


def test_a_refused_run_configuration_is_a_platform_error():
    refused = {"data": {"launchRun": {"__typename": "RunConfigValidationInvalid",
                                      "errors": [{"message": 'Received unexpected config entry "surprise"'}]}}}
    launched = {"data": {"launchRun": {"__typename": "LaunchRunSuccess", "run": {"runId": "run-1"}}}}
    with ScriptedHTTPServer() as graphql:
        graphql.script[:] = [(200, refused), (200, launched)]
        runs = DagsterRuns(graphql.url)
        with pytest.raises(LaunchFailed) as failed:
            runs.launch("train_model", {"ops": {}}, {"mlservice/tenant": "acme"})
        assert runs.launch("train_model", {"ops": {}}, {}) == "run-1"
    assert failed.value.code == "JOB_LAUNCH_FAILED" and STATUS_BY_CODE[failed.value.code] == 500
    assert failed.value.details["errors"] == ['Received unexpected config entry "surprise"']
    assert graphql.paths == ["/graphql", "/graphql"] and graphql.bodies[0]["variables"]["params"]["selector"]["jobName"] == "train_model"
