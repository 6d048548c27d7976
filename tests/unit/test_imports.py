"""No side effects and no heavy libraries at import of the API or the Dagster definitions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_importing_api_and_definitions_loads_no_heavy_library(tmp_path):
    code = (
        "import sys, serving_api.main, pipelines.definitions, mlservice.cli, mlservice.launcher.up;"
        "print(sorted(m for m in ('mlflow', 'ray', 'torch', 'feast', 'sklearn') if m in sys.modules))"
    )
    env = {"PATH": "/usr/bin:/bin", "MLSERVICE_DATA_DIR": str(tmp_path / "data")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True, cwd=str(tmp_path))
    assert out.stdout.strip() == "[]"
    assert not (tmp_path / "data").exists()  # nothing created at import


PACKAGES = ("resources", "serving_api", "assets", "pipelines", "mlservice")


def test_an_install_adds_only_the_projects_own_top_level_packages():
    """The four packages the design card fixes and the project's own namespace (config, the model
    core, monitoring, the launcher and the demo live under ``mlservice.*``): nothing generic such
    as ``config`` or ``inference`` lands in a user's site-packages."""
    import tomllib

    from setuptools import find_packages

    repo = Path(__file__).resolve().parents[2]
    found = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    packages = find_packages(str(repo), include=found["include"])
    assert {name.split(".")[0] for name in packages} == set(PACKAGES)
    assert "resources.models" in packages and "mlservice.inference" in packages  # subpackages are found


def _cycles(graph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycles_between_modules():
    """Function-level imports count too (grimp reads every import statement): a cycle hidden by
    deferring one side's import is still a cycle. Packages' ``__init__`` modules importing their
    own children are not cycles."""
    import grimp

    graph = grimp.build_graph(*PACKAGES, include_external_packages=False)
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    import grimp

    graph = grimp.ImportGraph()
    for module in ("a", "a.x", "a.y", "a.z"):
        graph.add_module(module)
    graph.add_import(importer="a.x", imported="a.y")
    graph.add_import(importer="a.y", imported="a.z")
    graph.add_import(importer="a.z", imported="a.x")
    assert _cycles(graph) == [["a.x", "a.y", "a.z"]]
