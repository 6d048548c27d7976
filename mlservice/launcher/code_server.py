"""``python -m mlservice.launcher.code_server api grpc ...``: Dagster's code server, whose run workers
start from a fork server that has already imported what every run imports.

Dagster's code server starts each run's worker with multiprocessing's ``spawn``: a new interpreter
that imports the definitions, Dagster, pandas, MLflow, scikit-learn, pyarrow and Ray again before
the run's first step: 5 to 10 s of CPU of imports for every run on the 2-core machine (profiled
in a training run's worker: imports were 60 % of its CPU), and the integration tier runs about
60 runs. Measured per run worker (CPU, the demo platform): the README's training job and its
batch job took 11 to 15 s each spawned (before the skops import lost torch), 3.1 and 3.6 s forked.

Here the code server takes multiprocessing's ``forkserver`` instead: one
clean process, started by the code server at its first run, imports ``RUN_WORKER_PRELOAD`` once and
forks each run worker from itself. Its imports start no Python thread (checked by
tests/unit/test_code_server.py; the native pools of OpenBLAS and pyarrow's jemalloc reset
themselves around fork), so forking it is safe, unlike forking the code server (gRPC's threads).
A run worker is still a process of its own that Dagster starts, watches, terminates and reports
on as before; it is a child of the fork server, which is a child of the code server, so
the part's process group holds them all, as it held the spawned workers.

Dagster fixes ``spawn`` in ``DagsterApiServer.__init__`` (``multiprocessing.get_context("spawn")``);
the one change here is the ``multiprocessing`` that module sees: its ``get_context`` returns the
fork server's context. Everything else is Dagster's own CLI (``dagster._cli.main``), unchanged.
"""

from __future__ import annotations

import multiprocessing
import sys
from typing import Any

# What runs import (the definitions bring Dagster, pandas, SQLAlchemy and the assets; the rest is
# imported inside the steps): 5.4 s of CPU, and Feast 5.1 s more (materializations and trainings on a
# feature service), paid once by the fork server instead of once a run. Not torch: only torch jobs
# need it, and it is large.
RUN_WORKER_PRELOAD = ["pipelines.definitions", "mlflow", "sklearn.ensemble", "sklearn.linear_model", "sklearn.neural_network",
                      "pyarrow.parquet", "ray", "ray.data", "feast"]


class _ForkServerOnly:
    """``multiprocessing`` as ``dagster._grpc.server`` uses it, with every context the fork server's."""

    def __init__(self, context: Any) -> None:
        self._context = context

    def get_context(self, method: str | None = None) -> Any:
        return self._context

    def __getattr__(self, name: str) -> Any:
        return getattr(multiprocessing, name)


def fork_server_context(preload: list[str] | None = None) -> Any:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(RUN_WORKER_PRELOAD if preload is None else preload))
    return context


def main() -> None:
    from dagster._cli import main as dagster_main
    from dagster._grpc import server

    server.multiprocessing = _ForkServerOnly(fork_server_context())
    dagster_main()  # the arguments after the module name, as ``dagster`` itself reads them


if __name__ == "__main__":
    sys.exit(main())
