"""The code server's run workers come from a fork server that imported what runs import
(mlservice/launcher/code_server.py)."""

from __future__ import annotations

import os
import subprocess
import sys

from mlservice.launcher.code_server import RUN_WORKER_PRELOAD, _ForkServerOnly, fork_server_context
from tests.utils.platform import REPO_ROOT


def _report(queue) -> None:
    queue.put({"preloaded": "sklearn.ensemble" in sys.modules, "parent": os.getppid()})


def test_a_worker_is_forked_from_the_fork_server_with_the_modules_loaded():
    context = _ForkServerOnly(fork_server_context(["sklearn.ensemble"])).get_context("spawn")  # as Dagster asks
    assert context.get_start_method() == "forkserver"
    queue = context.Queue()
    worker = context.Process(target=_report, args=(queue,))
    worker.start()
    seen = queue.get(timeout=120)
    worker.join(timeout=30)
    assert worker.exitcode == 0
    assert seen["preloaded"], "the worker imported scikit-learn itself"
    assert seen["parent"] != os.getpid()  # the fork server's child, not ours


def test_the_preloaded_modules_start_no_python_thread():
    """The fork server imports the preload and forks: no Python thread may hold a lock (logging's, an
    import's) at that moment. Native pools started by the imports (OpenBLAS, pyarrow's jemalloc) stop
    or reset themselves around fork, as they do for every forking server that imports numpy."""
    code = f"import threading\nfor name in {RUN_WORKER_PRELOAD!r}:\n    __import__(name)\nprint(threading.active_count())"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=180)
    assert done.stdout.strip().splitlines()[-1] == "1", done.stdout + done.stderr
