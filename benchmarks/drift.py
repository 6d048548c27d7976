"""Drift report benchmark: 100,000 logged predictions x 4 features, the platform API beside Evidently.

    .venv/bin/python benchmarks/drift.py [--rows 100000] [--calls 15] [--warmup 2]
        [--in-process-runs 7] [--evidently-runs 7] [--evidently-venv PATH] [--no-evidently] [--keep]

What it does (everything but Evidently's virtual environment lives in a temporary data directory,
removed at the end unless --keep):

1. Makes sure Evidently has its own virtual environment (default ``benchmarks/.venv-evidently``,
   created on first use with ``python -m venv`` and ``pip install evidently==0.7.23 "pandas<3"``;
   Evidently is never installed into the platform's environment and the platform never imports it).
2. Generates churn-like data with numpy (seeded), fits a LogisticRegression on the four churn
   features and logs it to an MLflow SQLite store inside a run of the tenant's experiment, with a
   signature and the run's drift reference sample (``mlservice.monitoring.reference.log_reference``: a seeded
   sample of 10,000 training rows, as every training job logs it).
3. Starts the platform API (uvicorn, 1 worker, 127.0.0.1, JWT auth on; the helpers of
   ``serving_vs_mlflow.py``), registers the model through ``POST /api/v1/models``, sends one real
   prediction and checks that the records written below have the very format the API wrote.
4. Writes 100,000 prediction-log records (one row each, ``avg_order_value`` shifted) straight into
   the ``prediction_log`` table, ``at`` spread over the last 12 hours.
5. Times ``GET /api/v1/monitoring/{model_id}/drift`` (all features, the default 24 h window): the
   model's first report in the API process (it reads the reference and the whole window), then,
   after warm-up calls, a series in which ``--new-per-call`` records are logged before each call (the
   API reads windows that end now incrementally: ``mlservice.monitoring.window_cache``); then, in this
   process, the whole window read (``mlservice.monitoring.traffic_window.current_sample``),
   ``mlservice.monitoring.drift_report.drift_report`` on the window's columns and ``mlservice.monitoring.drift_stats.drift_results``
   on the numpy columns of the same frames.
6. Runs Evidently's ``Report([DataDriftPreset()])`` on the SAME reference and current frames in the
   Evidently environment's own process and times ``Report.run`` there (import time printed apart).
7. Prints one table, the per-feature verdicts of both, the ratio Evidently p50 / API p50 and the
   verdict for the goal: API p50 <= 1 s and Evidently p50 >= 5x the API p50.

Evidently is not running the same test: with a reference above 1,000 rows it picks the normed
Wasserstein distance for numeric columns (Jensen-Shannon for categorical ones) where the platform runs
Kolmogorov-Smirnov; the comparison is one drift report on the same data of the same size. The
columns are declared numeric to Evidently (as the platform's signature has them), so that Evidently's
inference does not turn ``support_tickets`` (8 distinct values) into a categorical column.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for _path in (REPO, REPO / "benchmarks"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from serving_vs_mlflow import (  # noqa: E402  (sibling benchmark: helpers only, no side effects at import)
    OTHER_LOAD_WARN,
    Server,
    _group_ticks,
    clean_env,
    closed_port,
    free_port,
    log,
    wait_http,
)

TENANT = "bench"
FEATURES = ["total_orders", "days_since_last_order", "avg_order_value", "support_tickets"]
SHIFTED = "avg_order_value"
SHIFT = 20.0  # uniform(10, 300) has a std of ~84: a +20 shift is ~0.24 std (Evidently's normed Wasserstein ~0.22)
TRAINING_ROWS = 20_000  # log_reference keeps a seeded sample of 10,000 of them
GOAL_API_P50_S = 1.0
GOAL_RATIO = 5.0
EVIDENTLY_VERSION = "0.7.23"
# Evidently 0.7.23 does not cap pandas, yet imports a helper that pandas 3 removed.
EVIDENTLY_REQUIREMENTS = [f"evidently=={EVIDENTLY_VERSION}", "pandas<3"]
DEFAULT_EVIDENTLY_VENV = REPO / "benchmarks" / ".venv-evidently"
ROUTE = "/api/v1/monitoring/{model_id}/drift"

# Runs with the Evidently environment's interpreter; reads the frames written by this script.
EVIDENTLY_CHILD = r'''
import json, platform, sys, time
started = time.perf_counter()
import numpy as np
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset
import_s = time.perf_counter() - started

path, runs, warmup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
names = sys.argv[4].split(",")
data = np.load(path)
reference = pd.DataFrame({name: data["ref_" + name] for name in names})
current = pd.DataFrame({name: data["cur_" + name] for name in names})
definition = DataDefinition(numerical_columns=names)  # as the platform's signature types them


def once():
    t0 = time.perf_counter()
    ref = Dataset.from_pandas(reference, data_definition=definition)
    cur = Dataset.from_pandas(current, data_definition=definition)
    t1 = time.perf_counter()
    snapshot = Report([DataDriftPreset()]).run(cur, ref)
    t2 = time.perf_counter()
    return snapshot, t1 - t0, t2 - t1


for _ in range(warmup):
    once()
dataset_s, run_s = [], []
for _ in range(runs):
    snapshot, d, r = once()
    dataset_s.append(d)
    run_s.append(r)
columns, count = {}, None
for metric in snapshot.dict()["metrics"]:
    config = metric["config"]
    if config["type"].endswith(":ValueDrift"):
        method, threshold, score = config["method"], config["threshold"], float(metric["value"])
        drifted = score < threshold if "p_value" in method else score >= threshold
        columns[config["column"]] = {"method": method, "threshold": threshold, "score": score, "drifted": drifted}
    elif config["type"].endswith(":DriftedColumnsCount"):
        count = metric["value"]
import evidently, scipy
print("EVIDENTLY_RESULT " + json.dumps({
    "import_s": import_s, "dataset_s": dataset_s, "run_s": run_s, "columns": columns, "drifted_count": count,
    "rows": {"reference": len(reference), "current": len(current)},
    "versions": {"python": platform.python_version(), "evidently": evidently.__version__, "pandas": pd.__version__,
                 "numpy": np.__version__, "scipy": scipy.__version__},
}))
'''


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------
def _cpu_ticks() -> tuple[int, int]:
    """(busy, steal) CPU ticks of the whole machine so far; steal is time the hypervisor gave elsewhere."""
    v = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    return v[0] + v[1] + v[2] + v[5] + v[6], v[7]


class Load:
    """Cores used during a series: by what is measured (this process, its waited children, the API's
    process group) and by everything else on the machine, plus the hypervisor's steal. A series run
    while something else used the cores is not comparable (flagged in the table)."""

    def __init__(self, api_pgid: int | None = None) -> None:
        self.pgid, self.hz = api_pgid, os.sysconf("SC_CLK_TCK")

    def __enter__(self) -> Load:
        self.t0 = time.monotonic()
        self.busy0, self.steal0 = _cpu_ticks()
        self.api0 = _group_ticks(self.pgid) if self.pgid else 0
        self.times0 = os.times()
        return self

    def __exit__(self, *exc) -> None:
        seconds = time.monotonic() - self.t0
        busy, steal = _cpu_ticks()
        api = (_group_ticks(self.pgid) - self.api0) / self.hz if self.pgid else 0.0
        now = os.times()
        mine = sum(getattr(now, f) - getattr(self.times0, f) for f in ("user", "system", "children_user", "children_system"))
        self.ours = (api + mine) / seconds
        self.other = max(0.0, (busy - self.busy0) / self.hz / seconds - self.ours)
        self.steal = (steal - self.steal0) / self.hz / seconds

    @property
    def noisy(self) -> bool:
        return self.other + self.steal > OTHER_LOAD_WARN

    def cell(self) -> str:
        return f"{self.ours:.2f} / {self.other:.2f} / {self.steal:.2f}{' (!)' if self.noisy else ''}"


class Timings:
    """Seconds per call of one series (and the machine's load while it ran)."""

    def __init__(self, samples: list[float], load: Load | None = None) -> None:
        if not samples:
            raise ValueError("no samples")
        self.samples = sorted(samples)
        self.load = load

    def pick(self, q: float) -> float:
        """Nearest-rank percentile."""
        return self.samples[max(0, math.ceil(q * len(self.samples)) - 1)]

    @property
    def p50(self) -> float:
        return statistics.median(self.samples)

    def cells(self) -> str:
        return (f"{len(self.samples)} | {self.p50:.3f} | {self.pick(0.9):.3f} | {self.samples[0]:.3f} | "
                f"{self.samples[-1]:.3f} | {self.load.cell() if self.load else '-'}")


def timed(fn, runs: int, warmup: int = 1) -> tuple[Timings, object]:
    for _ in range(warmup):
        fn()
    times, value = [], None
    with Load() as load:
        for _ in range(runs):
            t0 = time.perf_counter()
            value = fn()
            times.append(time.perf_counter() - t0)
    return Timings(times, load), value


def churn_frame(n: int, seed: int, shift: float = 0.0):
    """Four churn-like features (three int64, one float64), as tests/utils/mlflow_models.churn_like."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "total_orders": rng.integers(1, 40, n).astype("int64"),
        "days_since_last_order": rng.integers(0, 200, n).astype("int64"),
        "avg_order_value": rng.uniform(10, 300, n) + shift,
        "support_tickets": rng.integers(0, 8, n).astype("int64"),
    })
    labels = ((frame["days_since_last_order"] / 60 + frame["support_tickets"] / 3 - frame["total_orders"] / 20) > 1)
    return frame, labels.astype(int).to_numpy()


# --------------------------------------------------------------------------------------------
# Evidently's own environment
# --------------------------------------------------------------------------------------------
def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def installed_evidently(venv: Path) -> str | None:
    python = venv_python(venv)
    if not python.exists():
        return None
    done = subprocess.run([str(python), "-c", "import importlib.metadata as m; print(m.version('evidently'))"],
                          capture_output=True, text=True, env=clean_env(), check=False)
    return done.stdout.strip() if done.returncode == 0 else None


def ensure_evidently_venv(venv: Path) -> None:
    """Create ``venv`` with Evidently pinned, unless it already holds that version."""
    have = installed_evidently(venv)
    if have == EVIDENTLY_VERSION:
        log(f"Evidently {have} found in {venv}")
        return
    log(f"creating {venv} with {' '.join(EVIDENTLY_REQUIREMENTS)} (first use: a couple of minutes)")
    started = time.monotonic()
    env = clean_env()
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, env=env)
    (venv / ".gitignore").write_text("*\n")  # a local tool environment, never to be committed
    install_log = venv / "install.log"
    with open(install_log, "wb") as out:
        done = subprocess.run([str(venv_python(venv)), "-m", "pip", "install", "--disable-pip-version-check",
                               *EVIDENTLY_REQUIREMENTS], stdout=out, stderr=subprocess.STDOUT, env=env, check=False)
    if done.returncode != 0 or installed_evidently(venv) != EVIDENTLY_VERSION:
        tail = "\n".join(install_log.read_text(errors="replace").splitlines()[-20:])
        raise RuntimeError(f"installing Evidently into {venv} failed (rc {done.returncode}):\n{tail}")
    log(f"Evidently {EVIDENTLY_VERSION} installed in {time.monotonic() - started:.0f} s")


def run_evidently(venv: Path, tmp: Path, reference, current, runs: int, warmup: int) -> dict:
    import numpy as np

    frames = tmp / "frames.npz"
    np.savez(frames, **{f"ref_{n}": reference[n].to_numpy() for n in FEATURES},
             **{f"cur_{n}": current[n].to_numpy() for n in FEATURES})
    script = tmp / "evidently_drift.py"
    script.write_text(EVIDENTLY_CHILD)
    argv = [str(venv_python(venv)), str(script), str(frames), str(runs), str(warmup), ",".join(FEATURES)]
    done = subprocess.run(argv, capture_output=True, text=True, env=clean_env(), cwd=tmp, timeout=1800, check=False)
    line = next((out for out in done.stdout.splitlines() if out.startswith("EVIDENTLY_RESULT ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"Evidently run failed (rc {done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return json.loads(line[len("EVIDENTLY_RESULT "):])


# --------------------------------------------------------------------------------------------
# the model and the log
# --------------------------------------------------------------------------------------------
def train_and_log(settings, train, labels) -> tuple[str, object]:
    """Fit, log the model (signature, skops) and the run's reference sample as training does
    (tests/utils/mlflow_models.log_fitted_model with reference=True); returns (run id, model)."""
    import warnings

    import mlflow
    import skops.io
    from sklearn.linear_model import LogisticRegression

    from mlservice.config.wiring import build_registry, build_state_store
    from mlservice.monitoring.reference import log_reference

    warnings.filterwarnings("ignore", message=".*Inferred schema contains integer column.*")
    model = LogisticRegression(max_iter=2000).fit(train, labels)
    experiment_id = build_registry(settings, build_state_store(settings)).ensure_experiment(TENANT, "drift-benchmark")
    signature = mlflow.models.infer_signature(train, model.predict_proba(train))
    mlflow.set_tracking_uri(settings.effective_tracking_uri)
    with mlflow.start_run(experiment_id=experiment_id, tags={"mlservice.tenant": TENANT}) as run:
        mlflow.sklearn.log_model(
            model, name="model", signature=signature, input_example=train.head(20), pip_requirements=["scikit-learn"],
            skops_trusted_types=skops.io.get_untrusted_types(data=skops.io.dumps(model)),
        )
        log_reference(train)
    return run.info.run_id, model


def logged_reference(settings, run_id: str, tmp: Path):
    """The reference sample as the run holds it (the artifact the API reads)."""
    import pandas as pd
    from mlflow import MlflowClient

    from resources.vocabulary import REFERENCE_ARTIFACT_DIR, REFERENCE_ARTIFACT_FILE

    client = MlflowClient(tracking_uri=settings.effective_tracking_uri)
    local = client.download_artifacts(run_id, f"{REFERENCE_ARTIFACT_DIR}/{REFERENCE_ARTIFACT_FILE}", str(tmp))
    return pd.read_parquet(local)


def signature_features(settings, run_id: str) -> list:
    """The model's FeatureSpecs, from the logged signature (as the API builds them)."""
    import mlflow

    from mlservice.inference.signature import FeatureSpec

    mlflow.set_tracking_uri(settings.effective_tracking_uri)
    inputs = mlflow.models.get_model_info(f"runs:/{run_id}/model").signature.inputs.inputs
    return [FeatureSpec(name=col.name, type=col.type.name) for col in inputs]


def log_rows(model, model_id: str, version: str, current, now: datetime, hours: float = 12.0,
             prefix: str = "drift-bench") -> list[dict]:
    """One prediction-log row per input row, in the format the API writes (PredictionRecorder.record
    and PredictionLog._row): features = [the row], outputs = prediction_record.Answer.outputs(), both as
    compact JSON text; ``at`` spread evenly over the ``hours`` before ``now``, oldest first."""
    import numpy as np

    from resources.predictions.records import Answer

    proba = np.asarray(model.predict_proba(current), dtype=float)
    labels = np.asarray(model.classes_)[proba.argmax(axis=1)].tolist()
    confidence = proba.max(axis=1).tolist()
    proba_rows = proba.tolist()
    columns = [current[name].tolist() for name in FEATURES]  # Python ints and floats, as a JSON body gives them
    n = len(current)
    step = timedelta(hours=hours) / n
    start = now - timedelta(hours=hours)
    rows = []
    for i, values in enumerate(zip(*columns, strict=True)):
        features = [dict(zip(FEATURES, values, strict=True))]
        answer = Answer(model_id, version, features, [labels[i]], [proba_rows[i]], [confidence[i]])
        request_id = f"{prefix}-{i:07d}"
        rows.append({
            "request_id": request_id, "client_request_id": request_id, "tenant_id": TENANT, "subject": "bench",
            "model_id": model_id, "model_version": version, "ensemble_id": None, "at": start + step * i,
            "latency_ms": 1.0, "status_code": 200,
            "features": json.dumps(features, separators=(",", ":")),
            "outputs": json.dumps(answer.outputs(), separators=(",", ":")),
        })
    return rows


def check_record_format(state, request_id: str, model, model_id: str, version: str, row: dict) -> None:
    """The API's own record of ``row`` against what log_rows writes for the same row."""
    import pandas as pd
    import sqlalchemy as sa

    from resources.predictions.log import prediction_log as t

    with state.engine.connect() as conn:
        api = conn.execute(sa.select(t).where(t.c.tenant_id == TENANT, t.c.request_id == request_id)).mappings().one()
    ours = log_rows(model, model_id, version, pd.DataFrame([row])[FEATURES], datetime.now(UTC))[0]
    assert api["features"] == ours["features"], f"features differ:\nAPI  {api['features']}\nours {ours['features']}"
    api_out, our_out = json.loads(api["outputs"]), json.loads(ours["outputs"])
    assert list(api_out) == list(our_out), f"outputs keys differ: {list(api_out)} != {list(our_out)}"
    assert api_out["prediction"] == our_out["prediction"], (api_out, our_out)
    for a, b in zip(api_out["probabilities"][0] + api_out["confidence"], our_out["probabilities"][0] + our_out["confidence"],
                    strict=True):
        assert abs(a - b) < 1e-9, (api_out, our_out)
    for key in ("entities", "feature_service", "members"):
        assert api_out[key] == our_out[key] is None, (key, api_out, our_out)
    assert (api["model_id"], api["model_version"], api["status_code"], api["ensemble_id"]) == (model_id, version, 200, None)
    with state.begin() as conn:  # the window holds exactly the rows written below
        conn.execute(sa.delete(t).where(t.c.tenant_id == TENANT, t.c.request_id == request_id))


def window_breakdown(state, model_id: str, version: str, start: datetime, end: datetime, runs: int) -> dict:
    """Where current_sample's time goes: its two queries (the model's own records; ensemble records
    naming it) fetched whole, then orjson.loads of the fetched features texts. What remains of the
    window read is building the columns (and fetching in batches of 5,000)."""
    import orjson
    import sqlalchemy as sa

    from resources.predictions.log import prediction_log as t

    window = sa.and_(t.c.tenant_id == TENANT, t.c.at >= start, t.c.at < end, t.c.status_code == 200)
    own = sa.and_(window, t.c.model_id == model_id, t.c.model_version == version)
    pattern = "%" + model_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    member = sa.and_(window, t.c.ensemble_id.is_not(None), t.c.outputs.like(pattern, escape="\\"))
    order = (t.c.at.desc(), t.c.id.desc())

    def fetch(condition):
        with state.engine.connect() as conn:
            return conn.execute(sa.select(t.c.model_version, t.c.features, t.c.outputs).where(condition).order_by(*order)).all()

    own_t, fetched = timed(lambda: fetch(own), runs)
    member_t, _ = timed(lambda: fetch(member), runs)
    texts = [row[1] for row in fetched]
    parse_t, _ = timed(lambda: [orjson.loads(text) for text in texts], runs)
    return {"own": own_t, "member": member_t, "parse": parse_t}


def bulk_insert(state, rows: list[dict], batch: int = 10_000) -> None:
    """One transaction, executemany in batches, through the table definition (UTCDateTime binds `at`)."""
    from resources.predictions.log import prediction_log

    with state.begin() as conn:
        for start in range(0, len(rows), batch):
            conn.execute(prediction_log.insert(), rows[start:start + batch])


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="logged predictions in the window (default 100000)")
    parser.add_argument("--calls", type=int, default=15, help="timed API calls (default 15)")
    parser.add_argument("--warmup", type=int, default=2, help="API warm-up calls after the first, untimed (default 2)")
    parser.add_argument("--new-per-call", type=int, default=100,
                        help="records logged before each timed call: traffic arriving while a dashboard polls (default 100)")
    parser.add_argument("--in-process-runs", type=int, default=7, help="timed runs of each in-process step (default 7)")
    parser.add_argument("--evidently-runs", type=int, default=7, help="timed Evidently reports after 1 warm-up (default 7)")
    parser.add_argument("--evidently-venv", type=Path, default=DEFAULT_EVIDENTLY_VENV,
                        help=f"Evidently's virtual environment, created on first use (default {DEFAULT_EVIDENTLY_VENV})")
    parser.add_argument("--no-evidently", action="store_true", help="skip Evidently (the platform's figures only)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data directory (API log, databases)")
    args = parser.parse_args()

    started_all = time.monotonic()
    if not args.no_evidently:
        ensure_evidently_venv(args.evidently_venv)
    tmp = Path(tempfile.mkdtemp(prefix="mlservice-bench-drift-"))
    api: Server | None = None
    try:
        import httpx

        from mlservice.config.settings import Settings
        from mlservice.config.wiring import build_state_store
        from mlservice.monitoring.drift_report import drift_report, feature_kind
        from mlservice.monitoring.drift_stats import drift_results
        from mlservice.monitoring.reference import sample_reference
        from mlservice.monitoring.traffic_window import current_sample
        from serving_api.auth import DEFAULT_TOKEN_SCOPES, issue_token

        os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
        secret = secrets.token_hex(32)
        tracking_uri = f"sqlite:///{tmp / 'mlflow.db'}"
        settings = Settings(jwt_secret=secret, data_dir=tmp, mlflow_tracking_uri=tracking_uri)

        # -- the model, its reference, the traffic ----------------------------------------------
        train, labels = churn_frame(TRAINING_ROWS, seed=0)
        run_id, model = train_and_log(settings, train, labels)
        reference = logged_reference(settings, run_id, tmp)
        assert reference.equals(sample_reference(train)), "the logged reference is not the seeded training sample"
        current, _ = churn_frame(args.rows, seed=1, shift=0.0)
        current[SHIFTED] = current[SHIFTED] + SHIFT
        specs = signature_features(settings, run_id)
        log(f"data dir {tmp}; model logged (run {run_id}); reference {len(reference)} rows, "
            f"signature {[(s.name, s.type) for s in specs]}")

        # -- the platform API --------------------------------------------------------------------
        port, dead = free_port(), closed_port()
        env = clean_env(
            MLSERVICE_DATA_DIR=str(tmp), MLSERVICE_MLFLOW_TRACKING_URI=tracking_uri, MLSERVICE_JWT_SECRET=secret,
            MLSERVICE_RATE_LIMIT_PER_SECOND="1000000", MLSERVICE_RATE_LIMIT_BURST="1000000",
            MLSERVICE_DAGSTER_URL=f"http://127.0.0.1:{dead}", MLSERVICE_RAY_DASHBOARD_URL=f"http://127.0.0.1:{dead}",
            MLFLOW_DISABLE_TELEMETRY="true", PYTHONPATH=str(REPO),
        )
        api = Server("platform API", [
            sys.executable, "-m", "uvicorn", "serving_api.main:create_app", "--factory", "--host", "127.0.0.1",
            "--port", str(port), "--workers", "1", "--no-access-log",
        ], env=env, cwd=tmp, log_path=tmp / "api.log").start()
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/health/live", api, 90)
        log(f"API up on {base} (pid {api.pid})")
        token = issue_token(settings, tenant_id=TENANT, subject="bench", scopes=DEFAULT_TOKEN_SCOPES, ttl_s=3600)
        state = build_state_store(settings)

        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=120,
                          trust_env=False) as client:
            reply = client.post("/api/v1/models", json={
                "name": "churn-drift", "model_type": "classification", "framework": "sklearn", "source": {"run_id": run_id},
            })
            if reply.status_code != 201:
                raise RuntimeError(f"registering the model: {reply.status_code} {reply.text}\n{api.tail()}")
            model_id, version = reply.json()["model_id"], reply.json()["current_version"]
            probe = {name: current[name].iloc[0].item() for name in FEATURES}
            answer = client.post("/api/v1/predictions", json={"model_id": model_id, "features": probe},
                                 headers={"X-Request-ID": "drift-bench-probe"})
            if answer.status_code != 200:
                raise RuntimeError(f"a prediction through the API: {answer.status_code} {answer.text}")
            check_record_format(state, answer.json()["request_id"], model, model_id, version, probe)
            log(f"registered {model_id} version {version}; the API's own record of a prediction has the format "
                "written below (checked, then deleted)")

            # Written straight into the table: sending 100k requests through the API would only
            # measure serving (benchmarks/serving_vs_mlflow.py covers that); the drift endpoint
            # reads the same rows either way.
            t0 = time.perf_counter()
            rows = log_rows(model, model_id, version, current, datetime.now(UTC))
            t1 = time.perf_counter()
            bulk_insert(state, rows)
            log(f"{len(rows)} prediction-log records built in {t1 - t0:.1f} s, inserted in {time.perf_counter() - t1:.1f} s")
            del rows

            # -- (a) the API -------------------------------------------------------------------
            route = ROUTE.format(model_id=model_id)
            api_times: list[float] = []
            body: dict = {}

            def call() -> dict:
                t0 = time.perf_counter()
                reply = client.get(route)
                elapsed = time.perf_counter() - t0
                if reply.status_code != 200:
                    raise RuntimeError(f"GET {route}: {reply.status_code} {reply.text}\n{api.tail()}")
                api_times.append(elapsed)
                return reply.json()

            first_s = 0.0
            for i in range(1 + args.warmup):
                call()
                elapsed = api_times.pop()
                first_s = first_s or elapsed
                log(f"{'first call (reference and the whole window read)' if i == 0 else 'warm-up call'}: {elapsed:.3f} s")
            added = 0
            with Load(api.pid) as load:
                for i in range(args.calls):
                    if args.new_per_call:  # untimed: the log grows between reports, as it does in service
                        fresh, _ = churn_frame(args.new_per_call, seed=100 + i, shift=0.0)
                        fresh[SHIFTED] = fresh[SHIFTED] + SHIFT
                        bulk_insert(state, log_rows(model, model_id, version, fresh, datetime.now(UTC), hours=1 / 3600,
                                                    prefix=f"drift-bench-new{i}"))
                        added += args.new_per_call
                    body = call()
            api_t = Timings(api_times, load)
            expected = args.rows + added
            assert body and body["current"]["rows"] == expected and not body["current"]["sampled"], body["current"]
            assert body["reference"]["rows"] == len(reference) and body["version"] == version, body["reference"]
            log(f"API {route}: p50 {api_t.p50:.3f} s over {args.calls} calls; window {body['current']}")

        # -- (b) the platform's computation, in process --------------------------------------------
        start, end = datetime.now(UTC) - timedelta(hours=24), datetime.now(UTC)
        window_t, sample = timed(lambda: current_sample(state, TENANT, model_id, FEATURES, start, end, version=version),
                                 args.in_process_runs)
        assert sample.rows == expected, sample.rows
        report_t, report = timed(lambda: drift_report(
            model_id=model_id, version=version, features=specs, reference=reference, reference_source="training",
            current=sample), args.in_process_runs)
        parts = window_breakdown(state, model_id, version, start, end, args.in_process_runs)
        kinds = {s.name: feature_kind(s) for s in specs}
        ref_cols = {n: reference[n].to_numpy() for n in FEATURES}
        cur_cols = {n: current[n].to_numpy() for n in FEATURES}
        stats_t, _ = timed(lambda: drift_results(ref_cols, cur_cols, kinds), args.in_process_runs)
        for name in FEATURES:  # the API's answer is the in-process report on the same rows
            a, b = body["results"][name], report["results"][name]
            assert a["method"] == b["method"] and abs(a["statistic"] - b["statistic"]) < 1e-12, (name, a, b)
            assert abs(a["p_value"] - b["p_value"]) < 1e-12, (name, a, b)
        log(f"in process: window read p50 {window_t.p50:.3f} s, drift_report p50 {report_t.p50:.3f} s, "
            f"drift_results on numpy p50 {stats_t.p50:.3f} s")
        api.stop()
        api = None

        # -- (c) Evidently, in its own environment --------------------------------------------------
        evidently = None
        if not args.no_evidently:
            log(f"Evidently {EVIDENTLY_VERSION}: 1 warm-up + {args.evidently_runs} reports on the same frames")
            with Load() as load:
                evidently = run_evidently(args.evidently_venv, tmp, reference, current, args.evidently_runs, warmup=1)
            evidently["load"] = load
            assert evidently["rows"] == {"reference": len(reference), "current": len(current)}, evidently["rows"]

        report_table(args, api_t, first_s, window_t, parts, report_t, stats_t, body, evidently, time.monotonic() - started_all)
        return 0
    finally:
        if api is not None:
            try:
                api.stop()
            except Exception as exc:
                print(f"could not stop the API: {exc}", file=sys.stderr)
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or "unknown CPU")
    return f"{os.cpu_count()} cores ({len(os.sched_getaffinity(0))} usable), {model}"


def versions() -> str:
    from importlib.metadata import version

    names = ["numpy", "scipy", "pandas", "scikit-learn", "SQLAlchemy", "orjson", "fastapi", "uvicorn", "mlflow"]
    return ", ".join(f"{n} {version(n)}" for n in names)


def report_table(args, api_t, first_s, window_t, parts, report_t, stats_t, body, evidently, elapsed) -> None:
    print()
    print(f"## Drift report, {body['reference']['rows']} reference rows vs {body['current']['rows']} logged predictions "
          f"x {len(FEATURES)} features ({time.strftime('%Y-%m-%d')})")
    print()
    print(f"Machine: {machine()}; Python {platform.python_version()}; platform: {versions()}")
    if evidently:
        v = evidently["versions"]
        print(f"Evidently's environment ({args.evidently_venv.name}): Python {v['python']}, evidently {v['evidently']}, "
              f"pandas {v['pandas']}, numpy {v['numpy']}, scipy {v['scipy']}")
    print()
    print("| path | runs | p50 s | p90 s | min s | max s | cores: measured / other / steal |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    print(f"| API GET {ROUTE}, the model's first report in the API process: reference and whole window read | 1 | "
          f"{first_s:.3f} | | | | |")
    print(f"| API GET {ROUTE}, later reports, {args.new_per_call} new records logged before each (client-side, httpx "
          f"keep-alive, after {args.warmup} warm-ups) | {api_t.cells()} |")
    print(f"| in process: mlservice.monitoring.traffic_window.current_sample, the whole window read (SQL fetch, orjson, columns) | "
          f"{window_t.cells()} |")
    print(f"| - of which: SQL, the model's own records, fetched whole | {parts['own'].cells()} |")
    print(f"| - of which: SQL, ensemble records naming the model (none here) | {parts['member'].cells()} |")
    print(f"| - of which: orjson.loads of the {body['current']['records']} features texts | {parts['parse'].cells()} |")
    print(f"| in process: mlservice.monitoring.drift_report.drift_report on the window's columns (statistics) | {report_t.cells()} |")
    print(f"| in process: mlservice.monitoring.drift_stats.drift_results on numpy columns | {stats_t.cells()} |")
    ev_t = None
    if evidently:
        ev_t = Timings(evidently["run_s"], evidently["load"])
        ds_t = Timings(evidently["dataset_s"], evidently["load"])
        print(f"| Evidently: Report([DataDriftPreset()]).run, own process (after 1 warm-up) | {ev_t.cells()} |")
        print(f"| Evidently: Dataset.from_pandas of both frames (not in the row above) | {ds_t.cells()} |")
    print()
    if evidently:
        print(f"Evidently's import (numpy, pandas, evidently) in its process: {evidently['import_s']:.2f} s, once, not timed above "
              "(the cores of the Evidently rows are over the whole child process: import, warm-up and runs).")
    timings = [api_t, window_t, *parts.values(), report_t, stats_t] + ([ev_t] if ev_t else [])
    if any(t.load and t.load.noisy for t in timings):
        print(f"(!) other processes or the hypervisor (steal) took more than {OTHER_LOAD_WARN} cores during that series: "
              "the machine was not quiet, the row is not comparable.")
    print("Cores: measured = the API's process group and this client (API row), this process (in-process rows) or the "
          "Evidently process; other = everything else on the machine; steal = the hypervisor's.")
    print()
    print("| feature | platform method | statistic | p (BH-corrected) | PSI | W normed | platform drifted | "
          "Evidently method | Evidently score | threshold | Evidently drifted |")
    print("| --- | --- | ---: | ---: | ---: | ---: | --- | --- | ---: | ---: | --- |")
    for name in FEATURES:
        r = body["results"][name]
        e = (evidently or {}).get("columns", {}).get(name)
        ev = (f"{e['method']} | {e['score']:.4f} | {e['threshold']:g} | {'yes' if e['drifted'] else 'no'}"
              if e else "- | - | - | -")
        print(f"| {name}{' (shifted +' + format(SHIFT, 'g') + ')' if name == SHIFTED else ''} | {r['method']} "
              f"({r.get('mode')}) | {r['statistic']:.4f} | {r['p_value_corrected']:.3g} | {r['psi']:.4f} | "
              f"{r['wasserstein_normed']:.4f} | {'yes' if r['drifted'] else 'no'} | {ev} |")
    print()
    if evidently:
        picked = ", ".join(f"{n}: {c['method']}" for n, c in evidently["columns"].items())
        print(f"Evidently picked per column: {picked} "
              f"(reference > 1000 rows: Wasserstein for numeric, Jensen-Shannon for categorical; the columns were "
              f"declared numeric). Not the platform's test (KS): a like-for-like size comparison, not an identical test. "
              f"Evidently's drifted-columns count: {evidently['drifted_count']}.")
    print()
    api_ok = api_t.p50 <= GOAL_API_P50_S
    print(f"Goal: API p50 <= {GOAL_API_P50_S:g} s: {'MET' if api_ok else 'NOT MET'} ({api_t.p50:.3f} s)")
    if ev_t is not None:
        ratio = ev_t.p50 / api_t.p50
        print(f"Goal: Evidently p50 / API p50 >= {GOAL_RATIO:g}x: {'MET' if ratio >= GOAL_RATIO else 'NOT MET'} "
              f"({ev_t.p50:.3f} s / {api_t.p50:.3f} s = {ratio:.2f}x; against the statistics alone, "
              f"drift_results on numpy: {ev_t.p50 / stats_t.p50:.1f}x; against the model's first report, which reads "
              f"the whole window: {ev_t.p50 / first_s:.2f}x)")
    print(f"Total benchmark time: {elapsed:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
