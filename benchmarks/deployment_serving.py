"""Deployment benchmark: single-row predictions of the demo RandomForest through a Ray Serve
deployment (via the API) against the API's in-process path and ``mlflow models serve``.

What it does (everything in a temporary data directory, removed at the end):

1. Starts the whole platform (``mlservice up --no-demo``: Ray head, MLflow, Dagster, S3, API) on
   free loopback ports, with a rate limit high enough not to be what is measured.
2. Fits the serving benchmark's RandomForest (100 trees, depth 10; ``serving_vs_mlflow``) into the
   platform's MLflow and registers it through the API.
3. Deploys it (``POST /api/v1/deployments``, 1 replica of 0.5 CPU) and waits until it runs.
4. Drives, with the same closed-loop wrk load (single-row POSTs, concurrency 8, a warm-up first):
   the API in process (``/api/v1/predictions``), the API through the deployment (the same body with
   ``deployment_id``: API -> Serve's proxy -> replica, the prediction logged by the
   replica), then the deployment scaled to 2 replicas (``PATCH``), then ``mlflow models serve`` of
   the same run (the platform still running beside it, as the other rows had it).
5. Prints req/s, p50 and p99 per path, the deployment path against ``mlflow models serve`` (goal:
   >= 3x) and its extra p50 over the in-process path, and 1 vs 2 replicas (no goal: 2 cores).

Run from the repository root:  .venv/bin/python benchmarks/deployment_serving.py
Needs ``wrk`` on PATH. About 6 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for _path in (REPO, REPO / "benchmarks"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from platform_runner import start_platform, stop_platform  # noqa: E402
from serving_vs_mlflow import (  # noqa: E402
    TENANT,
    Server,
    clean_env,
    free_port,
    log,
    run_wrk,
    single_rows,
    train_and_log,
    wait_http,
    write_lua,
)

GOAL = 3.0
DEPLOY_TIMEOUT_S = 300


def wait_running(client, deployment_id: str, replicas: int) -> dict:
    deadline = time.monotonic() + DEPLOY_TIMEOUT_S
    view: dict = {}
    while time.monotonic() < deadline:
        view = client.get(f"/api/v1/deployments/{deployment_id}").json()
        if view.get("status") == "running" and view["versions"][0]["replicas_running"] == replicas:
            return view
        if view.get("status") == "failed":
            raise RuntimeError(f"deployment failed: {view}")
        time.sleep(2)
    raise RuntimeError(f"deployment not running with {replicas} replica(s) within {DEPLOY_TIMEOUT_S} s: {view}")


def measure(name: str, url: str, script: Path, args) -> object:
    warm = run_wrk(url, script, concurrency=args.concurrency, seconds=args.warmup)
    if warm.errors:
        raise RuntimeError(f"{name}: errors during warm-up {warm.errors}\n{warm.raw}")
    result = run_wrk(url, script, concurrency=args.concurrency, seconds=args.duration)
    if result.errors:
        raise RuntimeError(f"{name}: wrk saw errors {result.errors}: results would be invalid\n{result.raw}")
    log(f"  {name:<44} c={args.concurrency}: {result.rps:8.1f} req/s  p50 {result.p50_ms:7.2f} ms  "
        f"p99 {result.p99_ms:7.2f} ms  ({result.requests} requests)")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per measured wrk run (default 15)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up before each run (default 3)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rows", type=int, default=64, help="distinct single-row bodies cycled by wrk")
    parser.add_argument("--replica-cpu", type=float, default=0.5)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not on PATH: apt-get install -y wrk", file=sys.stderr)
        return 2
    import httpx

    from mlservice.config.settings import Settings
    from mlservice.config.wiring import build_registry, build_state_store
    from serving_api.auth import DEFAULT_TOKEN_SCOPES, issue_token

    started_all = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="mlservice-deploy-bench-"))
    server = serve = None
    results: dict[str, object] = {}
    try:
        log(f"data dir {tmp}; starting the platform (mlservice up --no-demo)")
        server, ports, _ = start_platform(tmp, {"MLSERVICE_RATE_LIMIT_PER_SECOND": "1000000",
                                                "MLSERVICE_RATE_LIMIT_BURST": "1000000"})
        log(f"platform up in {time.monotonic() - started_all:.0f} s")
        settings = Settings(data_dir=tmp, mlflow_tracking_uri=f"http://127.0.0.1:{ports['MLFLOW']}")
        registry = build_registry(settings, build_state_store(settings))
        os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
        trained, X = train_and_log(tmp, settings.effective_tracking_uri,
                                   experiment_id=registry.ensure_experiment(TENANT, "deployment-benchmark"))
        forest = next(t for t in trained if t.key == "random_forest")
        token = issue_token(settings, tenant_id=TENANT, subject="bench", scopes=DEFAULT_TOKEN_SCOPES, ttl_s=3600)
        headers = {"Authorization": f"Bearer {token}"}
        base = f"http://127.0.0.1:{ports['API']}"
        client = httpx.Client(base_url=base, headers=headers, timeout=60, trust_env=False)
        reply = client.post("/api/v1/models", json={"name": "churn-forest", "model_type": "classification",
                                                    "framework": "sklearn", "source": {"run_id": forest.run_id}})
        if reply.status_code != 201:
            raise RuntimeError(f"registering: {reply.status_code} {reply.text}")
        model_id = reply.json()["model_id"]
        reply = client.post("/api/v1/deployments", json={"model_id": model_id, "num_replicas": 1,
                                                         "resources": {"cpu": args.replica_cpu}})
        if reply.status_code != 202:
            raise RuntimeError(f"deploying: {reply.status_code} {reply.text}")
        deployment_id = reply.json()["deployment_id"]
        mark = time.monotonic()
        wait_running(client, deployment_id, 1)
        log(f"deployed {deployment_id} (1 replica) in {time.monotonic() - mark:.0f} s from the request")

        rows = single_rows(X, args.rows)
        local = client.post("/api/v1/predictions", json={"model_id": model_id, "features": rows[0]}).json()
        deployed = client.post("/api/v1/predictions", json={"model_id": model_id, "deployment_id": deployment_id,
                                                            "features": rows[0]}).json()
        if deployed.get("served_by", {}).get("path") != "deployment" or deployed["probabilities"] != local["probabilities"]:
            raise RuntimeError(f"the deployment's answer differs: {deployed} vs {local}")
        url = f"{base}/api/v1/predictions"
        in_process = write_lua(tmp / "in_process.lua", [json.dumps({"model_id": model_id, "features": r}) for r in rows], headers)
        through = write_lua(tmp / "deployment.lua",
                            [json.dumps({"model_id": model_id, "deployment_id": deployment_id, "features": r}) for r in rows],
                            headers)
        results["API, in process"] = measure("API, in process", url, in_process, args)
        results["API -> deployment, 1 replica"] = measure("API -> deployment (Ray Serve), 1 replica", url, through, args)
        reply = client.patch(f"/api/v1/deployments/{deployment_id}", json={"num_replicas": 2})
        if reply.status_code != 202:
            raise RuntimeError(f"scaling: {reply.status_code} {reply.text}")
        wait_running(client, deployment_id, 2)
        results["API -> deployment, 2 replicas"] = measure("API -> deployment (Ray Serve), 2 replicas", url, through, args)
        client.delete(f"/api/v1/deployments/{deployment_id}")

        port = free_port()
        serve = Server("mlflow serve", [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"runs:/{forest.run_id}/model",
                                        "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
                       env=clean_env(MLFLOW_TRACKING_URI=settings.effective_tracking_uri, MLFLOW_DISABLE_TELEMETRY="true"),
                       cwd=tmp, log_path=tmp / "mlflow_serve.log").start()
        wait_http(f"http://127.0.0.1:{port}/ping", serve, 180)
        columns = list(X.columns)
        bodies = [json.dumps({"dataframe_split": {"columns": columns, "data": [[r[c] for c in columns]]}}) for r in rows]
        results["mlflow models serve"] = measure("mlflow models serve", f"http://127.0.0.1:{port}/invocations",
                                                 write_lua(tmp / "mlflow.lua", bodies, {}), args)
        report(results, args, time.monotonic() - started_all)
        return 0
    finally:
        if serve is not None:
            serve.stop()
        if server is not None:
            stop_platform(server, tmp)
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def report(results: dict, args, elapsed: float) -> None:
    print()
    print(f"Single-row predictions, RandomForest (100 trees, depth 10), concurrency {args.concurrency}, "
          f"{os.cpu_count()} CPUs; the whole platform running; benchmark took {elapsed / 60:.1f} min")
    print()
    print("| path | req/s | p50 ms | p99 ms |")
    print("|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r.rps:.1f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} |")
    mlflow, one, two, local = (results["mlflow models serve"], results["API -> deployment, 1 replica"],
                               results["API -> deployment, 2 replicas"], results["API, in process"])
    ratio = one.rps / mlflow.rps
    print()
    print(f"Deployment path (1 replica) vs mlflow models serve: {ratio:.2f}x req/s -> goal (>= {GOAL:g}x) "
          f"{'MET' if ratio >= GOAL else 'NOT MET'}; 2 replicas: {two.rps / mlflow.rps:.2f}x")
    print(f"Extra p50 of the deployment path over the in-process path: {one.p50_ms - local.p50_ms:+.2f} ms "
          f"(in process {local.p50_ms:.2f} ms, deployment {one.p50_ms:.2f} ms)")
    print(f"1 -> 2 replicas on {os.cpu_count()} cores: {one.rps:.1f} -> {two.rps:.1f} req/s (report only)")


if __name__ == "__main__":
    sys.exit(main())
