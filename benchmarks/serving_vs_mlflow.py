"""Online serving benchmark: the platform API vs ``mlflow models serve``, same models, same load.

What it does (everything lives in a temporary data directory, removed at the end):

1. Generates churn data (``mlservice.demo.churn_data``), fits a RandomForestClassifier(100 trees,
   depth 10) and a LogisticRegression on the four churn features and logs both to an MLflow SQLite
   store (experiment and runs tagged ``mlservice.tenant=bench``, signature, input example, skops).
2. Starts the platform API (uvicorn, 1 worker, 127.0.0.1, ``--no-access-log``; auth, validation,
   micro-batching and the durable prediction log all on, as always) and registers both models
   through ``POST /api/v1/models``.
3. Starts ``mlflow models serve --env-manager local`` for each model, one at a time.
4. Drives every server with the same closed-loop wrk load (single-row POSTs; concurrency 8 =
   ``-t2 -c8`` and concurrency 1 = ``-t1 -c1``; a warm-up run first), and reads req/s and the
   p50/p99 latency from wrk's latency histogram (``--latency``; exact percentiles from the Lua
   ``done`` hook).
5. Measures the raw in-process ``predict_proba`` of one row (a DataFrame) per model.
6. Prints a table, the API/mlflow ratios and whether the goals are met.

Run from the repository root:  .venv/bin/python benchmarks/serving_vs_mlflow.py
Needs ``wrk`` on PATH (``apt-get install -y wrk``). See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

TENANT = "bench"
RAY_WORKER_PORTS = range(10002, 20000)  # keep our servers out of Ray's worker port range
GOALS = {"random_forest": 10.0, "logistic_regression": 3.0}  # API/mlflow req/s at concurrency 8
P50_OVERHEAD_GOAL_MS = 2.0
OTHER_LOAD_WARN = 0.15  # cores used by unrelated processes during a run before we call it contaminated


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------
def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    """A free loopback port outside 10002-19999."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in RAY_WORKER_PORTS:
            return port
    raise RuntimeError("no free port outside 10002-19999")


def closed_port() -> int:
    """A port nothing listens on (for the Dagster / Ray dashboard URLs the API will not reach)."""
    return free_port()


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLSERVICE_", "MLFLOW_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class Server:
    """A child process in its own session, stopped by process group."""

    def __init__(self, name: str, argv: list[str], *, env: dict[str, str], cwd: Path, log_path: Path) -> None:
        self.name, self.argv, self.env, self.cwd, self.log_path = name, argv, env, cwd, log_path
        self.proc: subprocess.Popen | None = None
        self._log = None

    def start(self) -> Server:
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.argv, env=self.env, cwd=self.cwd, stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        return self

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, term_grace_s: float = 10.0) -> None:
        """SIGTERM to the group, SIGKILL after ``term_grace_s`` (a launcher that stops children of
        its own needs longer: killed early, it leaves them running)."""
        if self.proc is None:
            return
        pgid = self.proc.pid  # start_new_session: the child leads its own process group
        for sig, grace in ((signal.SIGTERM, term_grace_s), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                continue
            # the leader is gone; make sure nothing else of the group survives
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.5)
        else:
            self.proc.wait(timeout=5)
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _group_ticks(pgid: int) -> int:
    """CPU ticks (user+system) used so far by the live processes of a process group."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields[0] is the state: pgrp is the 5th stat field
            total += int(fields[11]) + int(fields[12])
    return total


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values[:8]) - idle, sum(values[:8])


class CpuMeter:
    """Cores used during a run by the server under test, by wrk, and by everything else."""

    def __init__(self, server_pgid: int | None) -> None:
        self.pgid = server_pgid
        self.hz = os.sysconf("SC_CLK_TCK")

    def __enter__(self) -> CpuMeter:
        self.t0 = time.monotonic()
        self.busy0, _ = _machine_ticks()
        self.server0 = _group_ticks(self.pgid) if self.pgid else 0
        usage = os.times()
        self.children0 = usage.children_user + usage.children_system
        return self

    def __exit__(self, *exc) -> None:
        seconds = time.monotonic() - self.t0
        busy, _ = _machine_ticks()
        server = (_group_ticks(self.pgid) - self.server0) if self.pgid else 0
        usage = os.times()
        children = usage.children_user + usage.children_system - self.children0  # wrk (waited child)
        self.server_cores = server / self.hz / seconds
        self.wrk_cores = children / seconds
        self.other_cores = max(0.0, (busy - self.busy0) / self.hz / seconds - self.server_cores - self.wrk_cores)


def wait_http(url: str, server: Server, timeout_s: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        if not server.alive():
            raise RuntimeError(f"{server.name} exited while starting:\n{server.tail()}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.25)
    raise RuntimeError(f"{server.name} did not answer {url} within {timeout_s}s ({last}):\n{server.tail()}")


# --------------------------------------------------------------------------------------------
# the platform API as the benchmarks run it (also used by api_workers.py)
# --------------------------------------------------------------------------------------------
def api_environment(tmp: Path, tracking_uri: str, secret: str, **extra: str) -> dict[str, str]:
    """The API's environment: its data dir, MLflow store and key; no rate limit to speak of;
    Dagster and Ray on a closed port (the benchmarks start neither)."""
    dead = closed_port()
    return clean_env(
        MLSERVICE_DATA_DIR=str(tmp), MLSERVICE_MLFLOW_TRACKING_URI=tracking_uri, MLSERVICE_JWT_SECRET=secret,
        MLSERVICE_RATE_LIMIT_PER_SECOND="1000000", MLSERVICE_RATE_LIMIT_BURST="1000000",
        MLSERVICE_DAGSTER_URL=f"http://127.0.0.1:{dead}", MLSERVICE_RAY_DASHBOARD_URL=f"http://127.0.0.1:{dead}",
        MLFLOW_DISABLE_TELEMETRY="true",
        # No MLFLOW_TRACKING_URI on purpose: the API must work from its MLSERVICE_* settings
        # alone (registration used to depend on MLflow's process-global URI; fixed in 99854eb).
        PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "benchmarks")]),
        **extra,
    )


def api_argv(port: int, workers: int, factory: str = "serving_api.main:create_app") -> list[str]:
    return [sys.executable, "-m", "uvicorn", factory, "--factory", "--host", "127.0.0.1",
            "--port", str(port), "--workers", str(workers), "--no-access-log"]


def bench_token(tmp: Path, secret: str) -> str:
    """A bearer token of the benchmark tenant with the default scopes, for an hour."""
    from mlservice.config.settings import Settings
    from serving_api.auth import DEFAULT_TOKEN_SCOPES, issue_token

    return issue_token(Settings(jwt_secret=secret, data_dir=tmp), tenant_id=TENANT, subject="bench",
                       scopes=DEFAULT_TOKEN_SCOPES, ttl_s=3600)


def single_rows(X, n: int) -> list[dict]:
    """``n`` rows of ``X`` (a fixed sample) as JSON-ready feature dicts."""
    sample = X.sample(n=n, random_state=1)
    return [{c: (v.item() if hasattr(v, "item") else v) for c, v in row.items()} for row in sample.to_dict("records")]


# --------------------------------------------------------------------------------------------
# 1. models
# --------------------------------------------------------------------------------------------
@dataclass
class Trained:
    key: str  # random_forest / logistic_regression
    label: str
    model: object
    run_id: str


def train_and_log(data_dir: Path, tracking_uri: str, experiment_id: str | None = None):
    """Fit both models and log them in runs of the tenant's experiment (created here unless
    ``experiment_id`` names one, e.g. the platform registry's ``ensure_experiment``)."""
    import warnings

    import mlflow
    import skops.io
    from mlflow import MlflowClient
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    from mlservice.demo.churn_data import CHURN_FEATURES, TARGET, churn_customers

    warnings.filterwarnings("ignore", message=".*Inferred schema contains integer column.*")
    frame = churn_customers()
    X, y = frame[CHURN_FEATURES], frame[TARGET].to_numpy()
    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient(tracking_uri=tracking_uri)
    if experiment_id is None:
        artifacts = (data_dir / "mlflow" / "artifacts" / TENANT).as_uri()
        experiment_id = client.create_experiment(f"{TENANT}/serving-benchmark", artifact_location=artifacts,
                                                 tags={"mlservice.tenant": TENANT})
    specs = [
        ("random_forest", "RandomForest(100 trees, depth 10)",
         RandomForestClassifier(n_estimators=100, max_depth=10, random_state=0)),
        ("logistic_regression", "LogisticRegression", LogisticRegression(max_iter=2000)),
    ]
    trained = []
    for key, label, model in specs:
        model.fit(X, y)
        signature = mlflow.models.infer_signature(X, model.predict_proba(X))
        with mlflow.start_run(experiment_id=experiment_id, run_name=key, tags={"mlservice.tenant": TENANT}) as run:
            mlflow.sklearn.log_model(
                model, name="model", signature=signature, input_example=X.head(5),
                pip_requirements=["scikit-learn", "mlflow", "skops"],
                skops_trusted_types=skops.io.get_untrusted_types(data=skops.io.dumps(model)),
            )
        trained.append(Trained(key, label, model, run.info.run_id))
    return trained, X


def raw_predict_p50_ms(model, row_frame, calls: int) -> float:
    """Median wall time of predict_proba on one row (a DataFrame), in process."""
    if hasattr(model, "n_jobs"):
        model.set_params(n_jobs=1)  # what the API does on load (mlservice.inference.loader)
    for _ in range(20):
        model.predict_proba(row_frame)
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        model.predict_proba(row_frame)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def fast_path_p50_ms(model, row_frame, calls: int) -> float | None:
    """Median wall time of the API's own verified matrix predictor on one row, in process."""
    import numpy as np

    from mlservice.inference.fast_paths import matrix_predictor
    from mlservice.inference.predictors import sklearn_predictor as _sklearn_predictor

    names = list(row_frame.columns)
    fast = matrix_predictor(model, "classification", _sklearn_predictor(model, "classification"), names, row_frame)
    if fast is None:
        return None
    row = row_frame.to_numpy(dtype=np.float64)
    for _ in range(20):
        fast(row)
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fast(row)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


# --------------------------------------------------------------------------------------------
# 4. load
# --------------------------------------------------------------------------------------------
LUA_TEMPLATE = """
local bodies = %(bodies)s
local n = #bodies
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
%(headers)s
request = function()
  i = i %% n + 1
  return wrk.format(nil, nil, nil, bodies[i])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT {\\"requests\\": %%d, \\"duration_us\\": %%d, \\"p50_us\\": %%d, \\"p99_us\\": %%d, " ..
    "\\"mean_us\\": %%f, \\"max_us\\": %%d, \\"connect\\": %%d, \\"read\\": %%d, \\"write\\": %%d, " ..
    "\\"status\\": %%d, \\"timeout\\": %%d}\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.mean,
    latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def lua_string(text: str) -> str:
    return "[==[" + text + "]==]"


def write_lua(path: Path, bodies: list[str], headers: dict[str, str]) -> Path:
    header_lines = "\n".join(f"wrk.headers[ {lua_string(k)} ] = {lua_string(v)}" for k, v in headers.items())
    path.write_text(LUA_TEMPLATE % {"bodies": "{" + ",\n".join(lua_string(b) for b in bodies) + "}",
                                    "headers": header_lines})
    return path


@dataclass
class LoadResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    errors: dict[str, int]
    raw: str
    server_cores: float = 0.0
    wrk_cores: float = 0.0
    other_cores: float = 0.0


def run_wrk(url: str, script: Path, *, concurrency: int, seconds: float, pgid: int | None = None) -> LoadResult:
    threads = 2 if concurrency >= 2 else 1
    argv = ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
            "--latency", "-s", str(script), url]
    with CpuMeter(pgid) as meter:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr}\n{done.stdout}")
    line = next((out for out in done.stdout.splitlines() if out.startswith("BENCH_RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result line:\n{done.stdout}\n{done.stderr}")
    data = json.loads(line[len("BENCH_RESULT "):])
    secs = data["duration_us"] / 1e6
    errors = {k: data[k] for k in ("connect", "read", "write", "status", "timeout") if data[k]}
    return LoadResult(data["requests"], secs, data["requests"] / secs, data["p50_us"] / 1000,
                      data["p99_us"] / 1000, errors, done.stdout,
                      meter.server_cores, meter.wrk_cores, meter.other_cores)


def start_postgres(tmp: Path):
    """A PostgreSQL as the scale profile runs it (mlservice.launcher.postgres) with a ``mlservice`` database:
    ((its process, the server), the database URL)."""
    from mlservice.launcher.postgres import LocalPostgres
    from mlservice.launcher.processes import ManagedProcess, wait_until

    server = LocalPostgres(home=tmp / "postgres", port=free_port(), password_path=tmp / "pg_password")
    server.init()
    process = ManagedProcess("postgres", server.argv(), env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"},
                             log_path=tmp / "postgres.log", stop_signal=signal.SIGINT, popen_options=server.popen_options())
    process.start()
    wait_until(server.ready, timeout_s=60, what="PostgreSQL", process=process)
    server.ensure_databases("mlservice")
    log(f"PostgreSQL up on 127.0.0.1:{server.port} for the API's state")
    return (process, server), server.url("mlservice")


def logged_rows(tmp: Path, database_url: str | None) -> int:
    """Rows of the API's prediction log (its SQLite file, or the PostgreSQL database)."""
    if database_url:
        import sqlalchemy as sa

        engine = sa.create_engine(database_url)
        try:
            with engine.connect() as conn:
                return conn.execute(sa.text("select count(*) from prediction_log")).scalar_one()
        finally:
            engine.dispose()
    db = sqlite3.connect(tmp / "api" / "state.db")
    try:
        return db.execute("select count(*) from prediction_log").fetchone()[0]
    finally:
        db.close()


def measure(name: str, url: str, script: Path, args, server: Server) -> dict[int, LoadResult]:
    results = {}
    for concurrency in args.levels:
        warm = run_wrk(url, script, concurrency=concurrency, seconds=args.warmup, pgid=server.pid)
        if warm.errors:
            raise RuntimeError(f"{name} c={concurrency}: errors during warm-up {warm.errors}\n{warm.raw}")
        result = run_wrk(url, script, concurrency=concurrency, seconds=args.duration, pgid=server.pid)
        if result.errors:
            raise RuntimeError(f"{name} c={concurrency}: wrk saw errors {result.errors} "
                               f"(non-2xx or socket errors): results would be invalid\n{result.raw}")
        log(f"  {name:<40} c={concurrency}: {result.rps:8.1f} req/s  p50 {result.p50_ms:7.2f} ms  "
            f"p99 {result.p99_ms:7.2f} ms  ({result.requests} requests; cores used: server "
            f"{result.server_cores:.2f}, wrk {result.wrk_cores:.2f}, other processes {result.other_cores:.2f})")
        if result.other_cores > OTHER_LOAD_WARN:
            log(f"  WARNING: other processes used {result.other_cores:.2f} cores during this run: "
                "the machine was not quiet, treat this row as contaminated")
        results[concurrency] = result
    return results


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=12.0, help="seconds per measured wrk run (default 12)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up before each run (default 2)")
    parser.add_argument("--raw-calls", type=int, default=2000, help="in-process predict_proba calls per model")
    parser.add_argument("--rows", type=int, default=64, help="distinct single-row bodies cycled by wrk")
    parser.add_argument("--mlflow-workers", type=int, default=None,
                        help="MLFLOW_MODELS_WORKERS for mlflow models serve (default: MLflow's own, 1 uvicorn worker)")
    parser.add_argument("--api-workers", type=int, default=1, help="uvicorn workers for the API (default 1)")
    parser.add_argument("--state", choices=("sqlite", "postgres"), default="sqlite",
                        help="the API's state database (prediction log): a SQLite file (embedded profile, default) or "
                             "a PostgreSQL this script starts with mlservice.launcher.postgres (scale profile)")
    parser.add_argument("--concurrency", default="8,1",
                        help="wrk concurrency levels, comma-separated (default 8,1; the goals are judged at 8 and 1)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data directory (logs, DBs)")
    parser.add_argument("--profile-dir", type=Path, default=None,
                        help="record py-spy profiles (speedscope JSON, GIL-holding samples) of the API during its "
                             "concurrency-8 runs; needs py-spy (pip install py-spy); slows the API while it samples")
    parser.add_argument("--ablate", default="",
                        help="what-if: comma list of benchmarks/api_ablations.py patches applied to the API "
                             "(nolog); not the shipped code")
    parser.add_argument("--api-env", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting for the API's environment, e.g. MLSERVICE_BATCH_MAX_WAIT_MS=0 (repeatable)")
    args = parser.parse_args()
    args.levels = [int(c) for c in args.concurrency.split(",")]

    if shutil.which("wrk") is None:
        print("wrk is not on PATH: apt-get install -y wrk", file=sys.stderr)
        return 2
    started_all = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="mlservice-bench-"))
    servers: list[Server] = []
    profilers: list[subprocess.Popen] = []
    postgres = None
    try:
        import httpx

        tracking_uri = f"sqlite:///{tmp / 'mlflow.db'}"
        log(f"data dir {tmp}; training and logging the models")
        os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
        trained, X = train_and_log(tmp, tracking_uri)
        rows = single_rows(X, args.rows)
        columns = list(X.columns)

        # -- raw in-process predict ------------------------------------------------------------
        raw, fast = {}, {}
        one_row = X.iloc[[0]]
        for t in trained:
            raw[t.key] = raw_predict_p50_ms(t.model, one_row, args.raw_calls)
            log(f"raw predict_proba, one row (DataFrame), {t.label}: p50 {raw[t.key]:.3f} ms over {args.raw_calls} calls")
            fast[t.key] = fast_path_p50_ms(t.model, one_row, args.raw_calls)
            log(f"the API's fast path, one row (matrix), {t.label}: p50 "
                + ("n/a" if fast[t.key] is None else f"{fast[t.key]:.3f} ms"))

        # -- the platform API ------------------------------------------------------------------
        secret = secrets.token_hex(32)
        api_port = free_port()
        api_env = api_environment(tmp, tracking_uri, secret, ABLATE=args.ablate)
        for setting in args.api_env:
            name, _, value = setting.partition("=")
            api_env[name] = value
        if args.state == "postgres":
            postgres, database_url = start_postgres(tmp)
            api_env["MLSERVICE_DATABASE_URL"] = database_url
        factory = "api_ablations:create_app" if args.ablate else "serving_api.main:create_app"
        api = Server("platform API", api_argv(api_port, args.api_workers, factory), env=api_env, cwd=tmp,
                     log_path=tmp / "api.log")
        servers.append(api.start())
        base = f"http://127.0.0.1:{api_port}"
        wait_http(f"{base}/health/live", api, 90)
        log(f"API up on {base} (pid {api.pid})")
        token = bench_token(tmp, secret)
        headers = {"Authorization": f"Bearer {token}"}
        model_ids = {}
        with httpx.Client(base_url=base, headers=headers, timeout=120) as client:
            for t in trained:
                reply = client.post("/api/v1/models", json={
                    "name": f"churn-{t.key.replace('_', '-')}", "model_type": "classification",
                    "framework": "sklearn", "source": {"run_id": t.run_id},
                })
                if reply.status_code != 201:
                    raise RuntimeError(f"registering {t.key}: {reply.status_code} {reply.text}")
                model_ids[t.key] = reply.json()["model_id"]
                check = client.post("/api/v1/predictions", json={"model_id": model_ids[t.key], "features": rows[0]})
                if check.status_code != 200:
                    raise RuntimeError(f"API prediction for {t.key}: {check.status_code} {check.text}")
                log(f"registered {t.key} as {model_ids[t.key]}; sample answer {check.json()['probabilities']}")

        results: dict[tuple[str, str], dict[int, LoadResult]] = {}
        for t in trained:
            bodies = [json.dumps({"model_id": model_ids[t.key], "features": r}) for r in rows]
            script = write_lua(tmp / f"api_{t.key}.lua", bodies, headers)
            prof = None
            if args.profile_dir is not None:
                pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
                args.profile_dir.mkdir(parents=True, exist_ok=True)
                prof = subprocess.Popen(
                    [pyspy, "record", "--pid", str(api.pid), "--rate", "200", "--format", "speedscope", "--gil",
                     "--threads", "--subprocesses",
                     "--duration", str(int(args.warmup + args.duration) + 1), "--nonblocking",
                     "-o", str(args.profile_dir / f"api_{t.key}_c8.speedscope.json")],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                )
                profilers.append(prof)
            results[(t.key, "API")] = measure(f"API / {t.label}", f"{base}/api/v1/predictions", script, args, api)
            if prof is not None:
                prof.wait(timeout=60)
        logged = logged_rows(tmp, api_env.get("MLSERVICE_DATABASE_URL"))
        log(f"prediction_log rows written by the API: {logged}")
        api.stop()
        servers.remove(api)

        # -- mlflow models serve ---------------------------------------------------------------
        for t in trained:
            port = free_port()
            env = clean_env(MLFLOW_TRACKING_URI=tracking_uri, MLFLOW_DISABLE_TELEMETRY="true")
            if args.mlflow_workers:
                env["MLFLOW_MODELS_WORKERS"] = str(args.mlflow_workers)
            serve = Server(f"mlflow serve {t.key}", [
                sys.executable, "-m", "mlflow", "models", "serve", "-m", f"runs:/{t.run_id}/model",
                "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port),
            ], env=env, cwd=tmp, log_path=tmp / f"mlflow_serve_{t.key}.log")
            servers.append(serve.start())
            wait_http(f"http://127.0.0.1:{port}/ping", serve, 180)
            def body(r, columns=columns):
                return json.dumps({"dataframe_split": {"columns": columns, "data": [[r[c] for c in columns]]}})
            check = httpx.post(f"http://127.0.0.1:{port}/invocations", content=body(rows[0]),
                               headers={"Content-Type": "application/json"}, timeout=60)
            if check.status_code != 200:
                raise RuntimeError(f"mlflow serve {t.key}: {check.status_code} {check.text}")
            log(f"mlflow models serve up for {t.key} on port {port}; sample answer {check.text.strip()}")
            script = write_lua(tmp / f"mlflow_{t.key}.lua", [body(r) for r in rows], {})
            results[(t.key, "mlflow serve")] = measure(f"mlflow serve / {t.label}",
                                                       f"http://127.0.0.1:{port}/invocations", script, args, serve)
            serve.stop()
            servers.remove(serve)

        # -- report ----------------------------------------------------------------------------
        report(trained, results, raw, fast, args, logged, time.monotonic() - started_all)
        return 0
    finally:
        if postgres is not None:
            postgres[0].stop()
            postgres[1].remove_external_cluster()
        for prof in profilers:
            if prof.poll() is None:
                try:
                    os.killpg(prof.pid, signal.SIGTERM)
                    prof.wait(timeout=10)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    pass
        for server in reversed(servers):
            try:
                server.stop()
            except Exception as exc:
                print(f"could not stop {server.name}: {exc}", file=sys.stderr)
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def report(trained, results, raw, fast, args, logged, elapsed) -> None:
    workers = args.mlflow_workers or 1  # MLflow 3.17's default: one uvicorn worker (its --help says so)
    print()
    print(f"## Results ({time.strftime('%Y-%m-%d')}, {platform.node() or 'host'}: {os.cpu_count()} cores, "
          f"Python {platform.python_version()}; wrk {args.duration:g} s per run after {args.warmup:g} s warm-up; "
          f"mlflow serve with {workers} uvicorn worker(s), API with {args.api_workers} on {args.state} state)")
    if args.ablate:
        print()
        print(f"WHAT-IF RUN: the API ran with benchmarks/api_ablations.py patches [{args.ablate}], "
              "NOT the shipped code.")
    print()
    print("| model | server | concurrency | req/s | p50 ms | p99 ms | cores used: server / wrk / other |")
    print("| --- | --- | ---: | ---: | ---: | ---: | --- |")
    contaminated = False
    for t in trained:
        for server in ("API", "mlflow serve"):
            for c in args.levels:
                r = results[(t.key, server)][c]
                flag = " (!)" if r.other_cores > OTHER_LOAD_WARN else ""
                contaminated |= bool(flag)
                print(f"| {t.label} | {server} | {c} | {r.rps:.1f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | "
                      f"{r.server_cores:.2f} / {r.wrk_cores:.2f} / {r.other_cores:.2f}{flag} |")
    if contaminated:
        print()
        print(f"(!) other processes used more than {OTHER_LOAD_WARN} cores during that run: the machine was not quiet.")
    print()
    if sorted(args.levels) != [1, 8]:  # other levels: the ratios only (the goals are judged at 8 and 1)
        print("| model | " + " | ".join(f"req/s ratio API/mlflow c={c}" for c in args.levels) + " |")
        print("| --- |" + " ---: |" * len(args.levels))
        for t in trained:
            api, ml = results[(t.key, "API")], results[(t.key, "mlflow serve")]
            print(f"| {t.label} | " + " | ".join(f"{api[c].rps / ml[c].rps:.2f}x" for c in args.levels) + " |")
        print(f"Total benchmark time: {elapsed:.0f} s")
        return
    print("| model | raw predict_proba p50 ms (1 row, DataFrame) | API's fast path p50 ms (1 row) | API p50 at c=1 ms | "
          "API p50 - raw ms | API p50 - fast path ms | req/s ratio API/mlflow c=8 | req/s ratio API/mlflow c=1 |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    verdicts = []
    for t in trained:
        api, ml = results[(t.key, "API")], results[(t.key, "mlflow serve")]
        r8, r1 = api[8].rps / ml[8].rps, api[1].rps / ml[1].rps
        over = api[1].p50_ms - raw[t.key]
        quick = fast[t.key]
        quick_text = "n/a" if quick is None else f"{quick:.3f}"
        over_fast = "n/a" if quick is None else f"{api[1].p50_ms - quick:+.2f}"
        print(f"| {t.label} | {raw[t.key]:.3f} | {quick_text} | {api[1].p50_ms:.2f} | {over:+.2f} | {over_fast} | "
              f"{r8:.2f}x | {r1:.2f}x |")
        goal = GOALS[t.key]
        verdicts.append(f"- {t.label}: throughput at concurrency 8 is {r8:.2f}x mlflow serve "
                        f"(goal >= {goal:g}x): {'MET' if r8 >= goal else 'NOT MET'}"
                        f" (at concurrency 1: {r1:.2f}x)")
        verdicts.append(f"- {t.label}: API p50 at concurrency 1 is {over:+.2f} ms over the raw predict_proba p50 "
                        f"(goal <= {P50_OVERHEAD_GOAL_MS:g} ms): {'MET' if over <= P50_OVERHEAD_GOAL_MS else 'NOT MET'}")
    print()
    print("Goals" + (f" (WHAT-IF with [{args.ablate}], not the shipped API)" if args.ablate else "") + ":")
    print("\n".join(verdicts))
    print()
    print(f"API answers: probabilities + label + confidence, JWT checked, prediction logged durably "
          f"({logged} prediction_log rows committed); mlflow serve answers predict() labels only.")
    print(f"Total benchmark time: {elapsed:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
