"""API workers side by side: single-row predictions at one concurrency through the platform API
with 1 and with 2 uvicorn workers, measured in alternating rounds (1, 2, 1, 2, ...) so that a
drift of the machine's speed (a shared VM's neighbours) lands on both sides alike.

Same models, load and API set-up as ``serving_vs_mlflow.py`` (whose helpers it uses): the churn
RandomForest (100 trees, depth 10) and LogisticRegression, JWT auth, validation, micro-batching
and the durable prediction log on; closed-loop wrk. Prints each round, then the median req/s per
worker count and the ratio of the medians. ``mlflow models serve`` is measured by
``serving_vs_mlflow.py``.

Run from the repository root:
    .venv/bin/python benchmarks/api_workers.py [--rounds 3] [--state sqlite|postgres]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from serving_vs_mlflow import (  # the benchmarks folder is on the path (above)
    Server,
    api_argv,
    api_environment,
    bench_token,
    free_port,
    log,
    run_wrk,
    single_rows,
    start_postgres,
    train_and_log,
    wait_http,
    write_lua,
)


def run_api(tmp: Path, workers: int, base_env: dict[str, str], token: str, rows: list[dict], trained, args) -> dict[str, object]:
    """Start the API with ``workers`` workers, make sure both models are registered, measure each."""
    import httpx

    port = free_port()
    api = Server(f"API x{workers}", api_argv(port, workers), env=base_env, cwd=tmp, log_path=tmp / f"api_{workers}.log")
    api.start()
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/health/live", api, 90)
        headers = {"Authorization": f"Bearer {token}"}
        results = {}
        with httpx.Client(base_url=base, headers=headers, timeout=120) as client:
            for t in trained:
                name = f"churn-{t.key.replace('_', '-')}"
                listed = client.get("/api/v1/models", params={"name_prefix": name}).json()["data"]
                model_id = next((m["model_id"] for m in listed if m["name"] == name), None)
                if model_id is None:
                    reply = client.post("/api/v1/models", json={"name": name, "model_type": "classification",
                                                                "framework": "sklearn", "source": {"run_id": t.run_id}})
                    if reply.status_code != 201:
                        raise RuntimeError(f"registering {t.key}: {reply.status_code} {reply.text}")
                    model_id = reply.json()["model_id"]
                bodies = [json.dumps({"model_id": model_id, "features": r}) for r in rows]
                script = write_lua(tmp / f"api_{t.key}.lua", bodies, headers)
                url = f"{base}/api/v1/predictions"
                # the warm-up's connections reach every worker, and each loads the model then
                run_wrk(url, script, concurrency=args.concurrency, seconds=args.warmup, pgid=api.pid)
                result = run_wrk(url, script, concurrency=args.concurrency, seconds=args.duration, pgid=api.pid)
                if result.errors:
                    raise RuntimeError(f"wrk saw errors {result.errors}\n{result.raw}")
                log(f"  {workers} worker(s) / {t.label:<34} {result.rps:8.1f} req/s  p50 {result.p50_ms:6.2f} ms  "
                    f"p99 {result.p99_ms:6.2f} ms  (cores: API {result.server_cores:.2f}, wrk {result.wrk_cores:.2f}, "
                    f"other {result.other_cores:.2f})")
                results[t.key] = result
        return results
    finally:
        api.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of (1 worker, 2 workers) (default 3)")
    parser.add_argument("--concurrency", type=int, default=16, help="wrk connections (default 16)")
    parser.add_argument("--duration", type=float, default=12.0, help="seconds per measured run (default 12)")
    parser.add_argument("--warmup", type=float, default=6.0, help="seconds of warm-up before each run (default 6)")
    parser.add_argument("--state", choices=("sqlite", "postgres"), default="sqlite",
                        help="the API's state database: a SQLite file (default) or a PostgreSQL started here")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not on PATH: apt-get install -y wrk", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="mlservice-workers-"))
    postgres = None
    try:
        tracking_uri = f"sqlite:///{tmp / 'mlflow.db'}"
        os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
        log(f"data dir {tmp}; training and logging the models")
        trained, X = train_and_log(tmp, tracking_uri)
        rows = single_rows(X, 64)
        secret = secrets.token_hex(32)
        env = api_environment(tmp, tracking_uri, secret)
        if args.state == "postgres":
            postgres, env["MLSERVICE_DATABASE_URL"] = start_postgres(tmp)
        token = bench_token(tmp, secret)
        rps: dict[tuple[int, str], list[float]] = {}
        for round_no in range(1, args.rounds + 1):
            for workers in (1, 2):
                log(f"round {round_no}: API with {workers} worker(s)")
                for key, result in run_api(tmp, workers, env, token, rows, trained, args).items():
                    rps.setdefault((workers, key), []).append(result.rps)
        print()
        print(f"## API workers ({time.strftime('%Y-%m-%d')}: {os.cpu_count()} cores, concurrency {args.concurrency}, "
              f"{args.state} state, {args.rounds} alternating rounds of {args.duration:g} s after {args.warmup:g} s warm-up)")
        print()
        print("| model | 1 worker req/s (rounds) | 2 workers req/s (rounds) | median 2 / median 1 |")
        print("| --- | --- | --- | ---: |")
        for t in trained:
            one, two = rps[(1, t.key)], rps[(2, t.key)]
            ratio = statistics.median(two) / statistics.median(one)
            print(f"| {t.label} | {statistics.median(one):,.0f} ({', '.join(f'{v:,.0f}' for v in one)}) | "
                  f"{statistics.median(two):,.0f} ({', '.join(f'{v:,.0f}' for v in two)}) | {ratio:.2f}x |")
        return 0
    finally:
        if postgres is not None:
            postgres[0].stop()
            postgres[1].remove_external_cluster()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
