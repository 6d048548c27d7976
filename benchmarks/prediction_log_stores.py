"""The prediction log's group commit on SQLite (embedded) and on PostgreSQL (scale profile), side by side.

What it does: for each store, a fresh database (a SQLite file in a temporary directory; a new
database of a PostgreSQL that this script starts with ``mlservice.launcher.postgres``, as the scale profile
does), the API's ``PredictionLog`` (group commit, ``max_wait_s=0`` as the API runs it), and
``--writers`` asyncio callers on one event loop (the API's shape: every answered prediction awaits
its committed record) writing records with a 4-feature payload for ``--seconds``. Prints records
per second, commits per second, rows per commit and the p50/p99 wait of one record, per store and
writer count.

Run from the repository root:  .venv/bin/python benchmarks/prediction_log_stores.py
Needs PostgreSQL's server binaries (Debian: postgresql; ``make test`` installs them).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

FEATURES = {"total_orders": 15, "days_since_last_order": 45, "avg_order_value": 125.5, "support_tickets": 3}
OUTPUTS = {"prediction": 1, "probabilities": {"0": 0.3, "1": 0.7}}


async def drive(plog, writers: int, seconds: float) -> list[float]:
    waits: list[float] = []
    deadline = time.perf_counter() + seconds

    async def writer(n: int) -> None:
        while time.perf_counter() < deadline:
            began = time.perf_counter()
            await plog.record(request_id=uuid.uuid4().hex, tenant_id="bench", model_id="m", model_version="1.0.0",
                              latency_ms=2.0, features=FEATURES, outputs=OUTPUTS)
            waits.append(time.perf_counter() - began)

    await asyncio.gather(*(writer(n) for n in range(writers)))
    return waits


def measure(url: str, writers: int, seconds: float) -> dict[str, float]:
    from resources.infra.state_db import StateStore
    from resources.predictions.log import PredictionLog

    store = StateStore(database_url=url)
    plog = PredictionLog(store, max_wait_s=0)
    plog.start()
    try:
        asyncio.run(drive(plog, writers, min(1.0, seconds)))  # warm-up
        before_rows, before_tx = plog.records_written, plog.transactions
        began = time.perf_counter()
        waits = asyncio.run(drive(plog, writers, seconds))
        took = time.perf_counter() - began
        rows, tx = plog.records_written - before_rows, plog.transactions - before_tx
    finally:
        plog.close()
        store.dispose()
    waits.sort()
    return {"records_per_s": rows / took, "commits_per_s": tx / took, "rows_per_commit": rows / max(tx, 1),
            "p50_ms": statistics.median(waits) * 1000, "p99_ms": waits[int(len(waits) * 0.99)] * 1000}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per run (default 5)")
    parser.add_argument("--writers", default="1,16,64", help="concurrent callers, comma-separated (default 1,16,64)")
    args = parser.parse_args()
    from mlservice.launcher.postgres import LocalPostgres
    from mlservice.launcher.processes import ManagedProcess, free_port, wait_until

    tmp = Path(tempfile.mkdtemp(prefix="mlservice-plog-bench-"))
    server = LocalPostgres(home=tmp / "postgres", port=free_port(), password_path=tmp / "pg_password")
    server.init()
    process = ManagedProcess("postgres", server.argv(), env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"},
                             log_path=tmp / "postgres.log", stop_signal=signal.SIGINT, popen_options=server.popen_options())
    process.start()
    rows = []
    try:
        wait_until(server.ready, timeout_s=60, what="PostgreSQL", process=process)
        for writers in (int(w) for w in args.writers.split(",")):
            for store in ("SQLite", "PostgreSQL"):
                if store == "SQLite":
                    url = f"sqlite:///{tmp / f'state-{writers}.db'}"
                else:
                    name = f"bench_{writers}"
                    server.ensure_databases(name)
                    url = server.url(name)
                figures = measure(url, writers, args.seconds)
                rows.append((store, writers, figures))
                print(f"{store:<10} writers {writers:>3}: {figures['records_per_s']:8.0f} records/s, "
                      f"{figures['commits_per_s']:7.0f} commits/s ({figures['rows_per_commit']:.1f} rows each), "
                      f"wait p50 {figures['p50_ms']:.2f} ms p99 {figures['p99_ms']:.2f} ms", flush=True)
    finally:
        process.stop()
        server.remove_external_cluster()
        shutil.rmtree(tmp, ignore_errors=True)
    print()
    print("| store | concurrent callers | records/s | commits/s | rows per commit | wait p50 ms | wait p99 ms |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for store, writers, f in rows:
        print(f"| {store} | {writers} | {f['records_per_s']:.0f} | {f['commits_per_s']:.0f} | {f['rows_per_commit']:.1f} | "
              f"{f['p50_ms']:.2f} | {f['p99_ms']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
