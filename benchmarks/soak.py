"""Soak: mixed traffic against the running embedded platform (``make up``, demo seeded) for a while,
then what it did to the platform: the RSS of every process at the start and the end, the error
count, and p50/p99 per route. Goal: no 5xx, memory flat. Not in CI (30 minutes by default).

Traffic, from ``--clients`` threads, each request drawn at random: single predictions of the demo
model (55%), online feature lookups (15%), model lists (10%), stage changes of a model of the
soak's own between development and staging (5%), drift reports (5%), job reads (5%), and a small
training job submitted now and then (5%; the tenant's job limit answers 429 when it holds as many
unfinished jobs as it may: counted, not an error of the platform).

Run from the repository root, with the platform up (its data directory and API port from the
same MLSERVICE_* variables ``make up`` used):  .venv/bin/python benchmarks/soak.py --minutes 30
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

DEMO_MODEL, TENANT = "customer_churn_predictor", "acme-corp"


def platform_processes(data_dir: Path) -> dict[int, str]:
    """pid -> a short name, for every live process whose environment names this data directory."""
    marker = f"MLSERVICE_DATA_DIR={data_dir}\0".encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker not in (entry / "environ").read_bytes():
                continue
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [a.decode(errors="replace") for a in argv if a]
        name = next((w.rsplit("/", 1)[-1] for w in words[1:] if not w.startswith("-")), words[0] if words else "?")
        found[int(entry.name)] = f"{name[:40]} ({entry.name})"
    return found


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class Soak:
    def __init__(self, api: str, token: str, seconds: float, clients: int) -> None:
        self.api, self.seconds, self.clients = api.rstrip("/"), seconds, clients
        self.headers = {"Authorization": f"Bearer {token}"}
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.statuses: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        self.samples: list[str] = []
        self.lock = threading.Lock()

    def setup(self, http: httpx.Client) -> None:
        demo = http.get("/api/v1/models", params={"name_prefix": DEMO_MODEL}).json()["data"][0]
        self.demo_id = demo["model_id"]
        run = http.get(f"/api/v1/models/{self.demo_id}/versions").json()["data"][0]["run_id"]
        own = http.post("/api/v1/models", json={"name": f"soak_{int(time.time())}", "model_type": "classification",
                                                "framework": "sklearn", "source": {"run_id": run}}).json()
        self.own_id, self.own_stage = own["model_id"], "development"

    def _record(self, route: str, reply: httpx.Response | None, seconds: float) -> None:
        status = reply.status_code if reply is not None else 0
        with self.lock:
            self.latency[route].append(seconds * 1000)
            self.statuses[route][status] += 1
            if (status >= 500 or status == 0) and len(self.samples) < 20:
                self.samples.append(f"{route}: {status} {reply.text[:200] if reply is not None else 'no answer'}")

    def _one(self, http: httpx.Client, rng: random.Random) -> None:
        draw = rng.random()
        features = {"total_orders": rng.randint(0, 60), "days_since_last_order": rng.randint(0, 365),
                    "avg_order_value": round(rng.uniform(5, 400), 2), "support_tickets": rng.randint(0, 9)}
        if draw < 0.55:
            route, call = "POST /predictions", lambda: http.post("/api/v1/predictions", json={
                "model_id": self.demo_id, "features": features, "options": {"return_probabilities": True}})
        elif draw < 0.70:
            ids = [f"cust-{rng.randint(1, 20000)}" for _ in range(rng.randint(1, 20))]
            route, call = "POST /features/online", lambda: http.post("/api/v1/features/online", json={
                "feature_refs": ["customer_features:total_orders", "customer_features:avg_order_value"],
                "entity_rows": [{"customer_id": i} for i in ids]})
        elif draw < 0.80:
            route, call = "GET /models", lambda: http.get("/api/v1/models", params={"limit": 20})
        elif draw < 0.85:
            with self.lock:
                target = "staging" if self.own_stage == "development" else "development"
                self.own_stage = target
            route, call = "PUT /models/{id}/stage", lambda: http.put(f"/api/v1/models/{self.own_id}/stage",
                                                                     json={"version": "1.0.0", "target_stage": target})
        elif draw < 0.90:
            route, call = "GET /monitoring/{id}/drift", lambda: http.get(f"/api/v1/monitoring/{self.demo_id}/drift")
        elif draw < 0.95:
            route, call = "GET /jobs", lambda: http.get("/api/v1/jobs", params={"limit": 10})
        else:
            route, call = "POST /training", lambda: http.post("/api/v1/training", json={
                "model_name": "soak_training", "estimator": "random_forest",
                "data_config": {"train_path": "s3://data/train.parquet", "validation_path": "s3://data/val.parquet",
                                "target_column": "churned"},
                "hyperparameters": {"n_estimators": 10, "max_depth": 4}})
        started = time.perf_counter()
        try:
            reply = call()
        except httpx.HTTPError:
            reply = None
        self._record(route, reply, time.perf_counter() - started)

    def _client(self, seed: int, until: float) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=self.api, headers=self.headers, trust_env=False, timeout=60) as http:
            while time.monotonic() < until:
                self._one(http, rng)

    def run(self) -> None:
        until = time.monotonic() + self.seconds
        threads = [threading.Thread(target=self._client, args=(i, until), daemon=True) for i in range(self.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()

    from mlservice.config.settings import get_settings
    from serving_api.auth import DEFAULT_TOKEN_SCOPES, issue_token

    settings = get_settings()
    token = issue_token(settings, tenant_id=TENANT, subject=f"soak@{TENANT}", scopes=DEFAULT_TOKEN_SCOPES, ttl_s=86400)
    api = f"http://127.0.0.1:{settings.api_port}"
    soak = Soak(api, token, args.minutes * 60, args.clients)
    with httpx.Client(base_url=api, headers=soak.headers, trust_env=False, timeout=60) as http:
        soak.setup(http)
    before = {pid: (name, rss_mib(pid)) for pid, name in platform_processes(settings.data_dir.resolve()).items()}
    print(f"soak: {args.minutes:g} min, {args.clients} clients, {len(before)} platform processes", flush=True)
    soak.run()
    after = {pid: rss_mib(pid) for pid in before}

    print(f"\n{'route':28} {'requests':>9} {'2xx':>7} {'4xx':>6} {'5xx':>5} {'p50 ms':>8} {'p99 ms':>8}")
    errors = 0
    for route in sorted(soak.latency):
        counts, values = soak.statuses[route], np.array(soak.latency[route])
        server = sum(n for s, n in counts.items() if s >= 500 or s == 0)
        errors += server
        print(f"{route:28} {len(values):9d} {sum(n for s, n in counts.items() if 200 <= s < 300):7d} "
              f"{sum(n for s, n in counts.items() if 400 <= s < 500):6d} {server:5d} "
              f"{np.percentile(values, 50):8.1f} {np.percentile(values, 99):8.1f}")
    print(f"\n5xx or no answer: {errors}")
    for sample in soak.samples:
        print("  " + sample)
    print(f"\n{'process':48} {'RSS start MiB':>14} {'RSS end MiB':>12} {'change':>8}")
    for pid, (name, start) in sorted(before.items(), key=lambda item: -(item[1][1] or 0)):
        end = after.get(pid)
        if start is None:
            continue
        change = f"{end - start:+8.1f}" if end is not None else "   gone"
        print(f"{name:48} {start:14.1f} {(end or 0):12.1f} {change}")
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
