"""The suite's pytest-xdist scheduler (tests/utils/xdist_groups.py) runs every collected item, items
that share a node id included (schemathesis gives every operation of one test the same), and keeps
each module on one worker in its order."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.utils.xdist_groups import OWN_PROCESSES, SHARED_PLATFORM, group_of

REPO_ROOT = Path(__file__).resolve().parents[2]

CONFTEST = textwrap.dedent('''
    import json, os
    import pytest
    from tests.utils import xdist_groups

    def pytest_xdist_make_scheduler(config, log):
        return xdist_groups.make_scheduler(config, log)

    class Same(pytest.Item):  # three items, one name: one node id, as schemathesis' operations
        def runtest(self):
            record(f"same:{self.index}")

    class SameFile(pytest.File):
        def collect(self):
            for index in range(3):
                item = Same.from_parent(self, name="op")
                item.index = index
                yield item

    def pytest_collect_file(parent, file_path):
        if file_path.name == "ops.same":
            return SameFile.from_parent(parent, path=file_path)

    def record(what):
        with open(os.environ["RECORD"], "a") as f:
            f.write(json.dumps([os.environ.get("PYTEST_XDIST_WORKER"), what]) + "\\n")
''')

ORDERED = textwrap.dedent('''
    from conftest import record
    state = []

    def test_first():
        state.append(1)
        record("ordered:first")

    def test_second():  # needs the first on the same worker, before it
        assert state == [1]
        record("ordered:second")
''')

OTHER = textwrap.dedent('''
    import pytest
    from conftest import record

    @pytest.mark.parametrize("n", range(4))
    def test_other(n):
        record(f"other:{n}")
''')


@pytest.mark.timeout(120)
def test_every_item_runs_and_a_module_stays_on_one_worker_in_order(tmp_path):
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_ordered.py").write_text(ORDERED)
    (tmp_path / "test_other.py").write_text(OTHER)
    (tmp_path / "ops.same").write_text("")
    record = tmp_path / "record.jsonl"
    env = {**os.environ, "RECORD": str(record), "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO_ROOT}"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2", "--dist", "loadgroup",
         "-c", os.devnull, "--rootdir", str(tmp_path), str(tmp_path)],
        check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=110,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "9 passed" in result.stdout, result.stdout
    runs = [json.loads(line) for line in record.read_text().splitlines()]
    assert sorted(what for _, what in runs) == sorted(
        ["same:0", "same:1", "same:2", "ordered:first", "ordered:second", *(f"other:{n}" for n in range(4))])
    ordered = [(worker, what) for worker, what in runs if what.startswith("ordered:")]
    assert len({worker for worker, _ in ordered}) == 1 and [what for _, what in ordered] == ["ordered:first", "ordered:second"]


def test_groups():
    assert group_of("tests/integration/test_models_api.py::test_x") == SHARED_PLATFORM
    assert group_of("tests/integration/test_faults.py::test_x") == OWN_PROCESSES
    assert group_of("tests/api/test_fuzz_openapi.py::test_api[GET /x]") == "tests/api/test_fuzz_openapi.py"
