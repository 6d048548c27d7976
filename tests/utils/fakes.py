"""Dagster and Ray as the API's job service sees them, for fast API tests: a launch returns a run id,
a run has the status the test sets, Ray answers with the resources the test gives. The real ones
are used by the integration tier."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime

from resources.infra.dagster_runs import STATUS_BY_DAGSTER, RunState


class FakeRuns:
    """Dagster as the job service sees it: launches recorded, run statuses set by the test."""

    def __init__(self) -> None:
        self.tags: dict[str, dict[str, str]] = {}
        self.status: dict[str, str] = {}
        self.launched: list[tuple[str, dict]] = []  # (job name, run config) in launch order

    def launch(self, job_name, run_config, tags):
        run_id = uuid.uuid4().hex
        self.launched.append((job_name, run_config))
        self.tags[run_id], self.status[run_id] = dict(tags), "STARTED"
        return run_id

    def state(self, run_id):
        status = self.status[run_id]
        return RunState(run_id, STATUS_BY_DAGSTER[status], status, None, None)

    def run_id_by_tag(self, key, value):
        return None

    def failure_message(self, run_id):
        return None

    def terminate(self, run_id):
        self.status[run_id] = "CANCELED"
        return True

    def run_url(self, base_url, run_id):
        return f"{base_url}/runs/{run_id}"


class FakeRay:
    """Ray as the API sees it over the dashboard: reachable, with these resources and Serve applications."""

    def __init__(self, resources: dict | None = None) -> None:
        self.resources = dict(resources or {"CPU": 2})
        self.applications: dict[str, dict] = {}

    def ensure_reachable(self) -> None:
        pass

    def total_resources(self) -> dict:
        return dict(self.resources)

    def serve_applications(self) -> dict:
        return dict(self.applications)


class ScriptedHTTPServer:
    """A real HTTP server on loopback that answers POSTs from a script, one step a request: a
    ``(status, json body)`` pair, or ``"drop"`` to close the connection without an answer. It records
    each request's path and JSON body. Stands in for Ray Serve's proxy in the API's fast tests (the
    integration tier has the real one)."""

    def __init__(self) -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.script: list = []
        self.paths: list[str] = []
        self.bodies: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                server.paths.append(self.path)
                server.bodies.append(json.loads(body))
                step = server.script.pop(0)
                if step == "drop":
                    self.close_connection = True
                    return
                status, reply = step
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> ScriptedHTTPServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def deployment_record(**changes):
    """A running deployment's record (acme's dep-1 of model m, 1.0.0, one replica of 0.25 CPU), with ``changes``."""
    from resources.deployments.store import DeploymentRecord

    now = datetime(2026, 11, 28, tzinfo=UTC)
    base = DeploymentRecord(
        deployment_id="dep-1", tenant_id="acme", model_id="m", model_name="churn", version="1.0.0", runtime="ray_serve",
        spec={"num_replicas": 1, "autoscaling": None, "resources": {"cpu": 0.25}}, canary=None, status="running",
        reason=None, generation=2, applied_generation=2, failures=0, created_by="a", created_at=now, updated_at=now)
    return replace(base, **changes)
