"""Launching and watching Dagster runs through the webserver's GraphQL API.

The API never imports the Dagster definitions: it names a job, sends run config and tags, and
reads run status, the first failure message and cancels, all over HTTP.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from resources.errors import DependencyUnavailable, DomainError

log = logging.getLogger("mlservice.dagster_runs")

LOCATION_NAME = "mlservice"  # workspace.yaml
REPOSITORY_NAME = "__repository__"  # the implicit repository of a Definitions object

STATUS_BY_DAGSTER = {
    "QUEUED": "queued", "NOT_STARTED": "queued", "MANAGED": "queued", "STARTING": "queued",
    "STARTED": "running", "SUCCESS": "succeeded", "FAILURE": "failed",
    "CANCELING": "running", "CANCELED": "cancelled",  # canceling may still end otherwise: not final yet
}

_LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on PythonError { message }
    ... on Error { message }
  }
}"""

_RUN = """
query Run($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { runId status startTime endTime }
    ... on Error { message }
  }
}"""

_RUN_BY_TAG = """
query RunByTag($key: String!, $value: String!) {
  runsOrError(filter: {tags: [{key: $key, value: $value}]}, limit: 1) {
    __typename
    ... on Runs { results { runId } }
    ... on Error { message }
  }
}"""

_FAILURE = """
query Failure($runId: ID!) {
  logsForRun(runId: $runId, limit: 1000) {
    __typename
    ... on EventConnection { events { __typename
      ... on ExecutionStepFailureEvent { stepKey error { message causes { message } } failureMetadata { metadataEntries { label } } }
      ... on RunFailureEvent { message }
      ... on EngineEvent { message } } }
  }
}"""

_TERMINATE = """
mutation Terminate($runId: String!) {
  terminateRun(runId: $runId) { __typename ... on Error { message } }
}"""


MAX_RUNTIME_FAILURE = "Exceeded maximum runtime of "  # what Dagster's run monitoring writes (dagster/max_runtime)
# what the code server writes when a run's process died under it (dagster._grpc.server, get_run_crash_explanation)
WORKER_CRASH = "Run execution process for "
# what run monitoring writes when the platform's health check found the worker gone (pipelines/run_launcher.py)
WORKER_HEALTH_FAILURE = "Detected run worker status FAILED: '"
INTERRUPTED = "dagster._core.errors.DagsterExecutionInterruptedError"  # a step's error when its worker got SIGTERM/SIGINT
# how Dagster wraps what an op raised that is not a Failure: the exception itself is its first cause
STEP_WRAPPER = "dagster._core.errors.DagsterExecutionStepExecutionError"
WORKER_LOST = ("it was killed or crashed (out of memory, a signal, a restart of the Dagster daemon or of the platform) "
               "before the run ended; the job may be submitted again")


class LaunchFailed(DomainError):
    """Dagster refused the run configuration the platform built from a checked request: the
    platform's fault (500 JOB_LAUNCH_FAILED, nothing stored), never the caller's 400."""

    code = "JOB_LAUNCH_FAILED"


@dataclass
class RunState:
    run_id: str
    status: str  # the API's job status
    dagster_status: str
    started_at: datetime | None
    finished_at: datetime | None


def _ts(seconds: float | None) -> datetime | None:
    return datetime.fromtimestamp(seconds, tz=UTC) if seconds else None


class DagsterRuns:
    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/") + "/graphql"
        self.timeout_s = timeout_s

    def _query(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        try:
            with httpx.Client(timeout=self.timeout_s, trust_env=False) as client:
                response = client.post(self.url, json={"query": query, "variables": variables})
        except httpx.HTTPError as exc:
            raise DependencyUnavailable("the Dagster webserver is unreachable", {"component": "dagster"}) from exc
        if response.status_code != 200:
            raise DependencyUnavailable(f"the Dagster webserver answered HTTP {response.status_code}", {"component": "dagster"})
        body = response.json()
        if body.get("errors"):
            raise DependencyUnavailable("the Dagster GraphQL API refused the query", {"errors": [e.get("message") for e in body["errors"]]})
        return body["data"]

    def launch(self, job_name: str, run_config: dict[str, Any], tags: dict[str, str]) -> str:
        params = {
            "selector": {"repositoryLocationName": LOCATION_NAME, "repositoryName": REPOSITORY_NAME, "jobName": job_name},
            "runConfigData": run_config,
            "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]},
        }
        result = self._query(_LAUNCH, {"params": params})["launchRun"]
        if result["__typename"] == "LaunchRunSuccess":
            return result["run"]["runId"]
        if result["__typename"] == "RunConfigValidationInvalid":
            errors = [e["message"] for e in result["errors"]]
            log.error("Dagster refused the run configuration of job %s: %s", job_name, errors)
            raise LaunchFailed(f"the platform built a run configuration for '{job_name}' that Dagster refused (a platform "
                               "fault, not the request's: quote the request id when reporting it)", {"errors": errors[:20]})
        raise DependencyUnavailable(
            f"Dagster could not launch job '{job_name}': {result.get('message', result['__typename'])}",
            {"component": "dagster"},
        )

    def state(self, run_id: str) -> RunState | None:
        result = self._query(_RUN, {"runId": run_id})["runOrError"]
        if result["__typename"] != "Run":
            return None
        return RunState(
            run_id=run_id, status=STATUS_BY_DAGSTER.get(result["status"], "queued"), dagster_status=result["status"],
            started_at=_ts(result.get("startTime")), finished_at=_ts(result.get("endTime")),
        )

    def run_id_by_tag(self, key: str, value: str) -> str | None:
        """The newest run carrying the tag (runs the daemon launched, e.g. for a schedule)."""
        result = self._query(_RUN_BY_TAG, {"key": key, "value": value})["runsOrError"]
        if result["__typename"] != "Runs" or not result.get("results"):
            return None
        return result["results"][0]["runId"]

    def failure_message(self, run_id: str) -> str | None:
        """Why the run failed, in a line (``failure_reason`` of its events)."""
        logs = self._query(_FAILURE, {"runId": run_id})["logsForRun"]
        return failure_reason(logs.get("events") or [])

    def terminate(self, run_id: str) -> bool:
        result = self._query(_TERMINATE, {"runId": run_id})["terminateRun"]
        return result["__typename"] == "TerminateRunSuccess"

    def run_url(self, base_url: str, run_id: str) -> str:
        return f"{base_url.rstrip('/')}/runs/{run_id}"


def failure_reason(events: list[dict[str, Any]]) -> str | None:
    """Why a run failed, from its events as GraphQL gives them (``__typename``, ``message``,
    a step failure's ``error`` and its ``causes``): stopped at its maximum runtime; else the first step
    failure's message (what the asset raised, under Dagster's wrapper); else its worker's death as the code server or run
    monitoring reported it; else the run failure's message."""
    for event in events:  # stopped by run monitoring: that is the reason, not the interrupted step
        message = event.get("message") or ""
        if event["__typename"] == "RunFailureEvent" and message.startswith(MAX_RUNTIME_FAILURE):
            seconds = message[len(MAX_RUNTIME_FAILURE):].split()[0]
            return f"the run exceeded its maximum runtime of {seconds} seconds (MLSERVICE_MAX_RUN_MINUTES) and was stopped"
    for event in events:
        if event["__typename"] == "ExecutionStepFailureEvent" and event.get("error"):
            chain = [_first_line(event["error"]["message"]), *(_first_line(c["message"]) for c in event["error"].get("causes") or [])]
            # the worker was stopped by a signal (a restart of what ran it); the interrupt may surface inside
            # another error (CI: "SystemError: <cyfunction CoreWorker.wait ...> returned a result with an exception set")
            if any(line.startswith(INTERRUPTED) for line in chain):
                return f"the run worker was interrupted (stopped by a signal): {WORKER_LOST}"
            if chain[0].startswith(STEP_WRAPPER) and len(chain) > 1:  # what the op raised, not Dagster's wrapper
                return chain[1]
            return chain[0]
    for event in events:  # the run's worker died: the code server or run monitoring says how
        message = event.get("message") or ""
        if message.startswith("[") and "] " in message:  # "[DagsterApiServer] Run execution process for ..."
            message = message.split("] ", 1)[1]
        if event["__typename"] == "EngineEvent" and message.startswith(WORKER_CRASH):
            how = message[len(WORKER_CRASH):].split(" ", 1)[1].split(" This usually", 1)[0].rstrip(".")
            return f"the run worker {how}: {WORKER_LOST}"
        if event["__typename"] == "RunFailureEvent" and message.startswith(WORKER_HEALTH_FAILURE):
            return message[len(WORKER_HEALTH_FAILURE):].rsplit("'", 1)[0]
    for event in events:
        if event["__typename"] == "RunFailureEvent" and event.get("message"):
            return _first_line(event["message"])
    return None


def _first_line(message: str) -> str:
    """Dagster prefixes errors with the exception type; keep the readable part, no traceback."""
    line = message.strip().splitlines()[0] if message.strip() else message
    for prefix in ("dagster._core.definitions.events.Failure: ", "Failure: "):
        if line.startswith(prefix):
            line = line[len(prefix):]
    return line[:1000]
