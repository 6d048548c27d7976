"""``skops.io``, imported without importing torch: the platform's code that reads or writes a
scikit-learn model (the artifact check, model logging) gets it from ``skops_io()``. Tests and
benchmarks that examine or log models with skops itself may import it plainly (it is the same
module; they only pay the slower import).

At import, skops builds its default trusted types from scikit-learn's ``all_estimators()``, which
walks scikit-learn's packages with ``pkgutil.walk_packages``. That walk imports every package it
finds, including those whose modules ``all_estimators`` then skips: ``sklearn.externals`` among
them, and with it ``array_api_compat.torch``, which imports torch. With torch loaded, skops'
``get_public_type_names`` also searches several thousand more modules for each type. Measured on
the 2-core machine (one process, bytecode compiled): ``import sklearn, pandas`` 1.4 s of CPU,
adding ``import skops.io`` 3.9 s; profiled in a training run's worker, the skops import was 29 %
of the run worker's CPU (torch 45 % of that). Run workers, Serve replicas, batch actors and API
processes each paid it once.

Here the walk leaves out, without importing them, the packages whose modules ``all_estimators``
skips anyway (any part of the name in its ``_MODULE_TO_IGNORE``, or private: ``._`` in the name),
so the estimator list, and skops' trusted types with it, are the same
(tests/unit/test_skops_import.py compares them with an unpatched import in another process).
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from collections.abc import Callable, Iterator
from types import ModuleType


class _PublicWalk:
    """``pkgutil`` as ``sklearn.utils.discovery`` uses it: ``walk_packages`` that neither yields nor
    imports the packages ``skip`` names."""

    def __init__(self, skip: Callable[[str], bool]) -> None:
        self._skip = skip

    def walk_packages(self, path: list[str] | None = None, prefix: str = "", onerror: Callable | None = None) -> Iterator:
        for info in pkgutil.iter_modules(path, prefix):
            if self._skip(info.name):
                continue
            yield info
            if not info.ispkg:
                continue
            try:
                package = importlib.import_module(info.name)
            except ImportError:  # as pkgutil.walk_packages: reported, not walked
                if onerror is not None:
                    onerror(info.name)
                continue
            yield from self.walk_packages(list(getattr(package, "__path__", None) or []), info.name + ".", onerror)


def skops_io() -> ModuleType:
    """The ``skops.io`` module (imported once per process)."""
    if "skops.io" in sys.modules:
        return sys.modules["skops.io"]
    from sklearn.utils import discovery

    ignored = frozenset(discovery._MODULE_TO_IGNORE)
    walk = _PublicWalk(lambda name: "._" in name or any(part in ignored for part in name.split(".")))
    real = discovery.pkgutil
    discovery.pkgutil = walk  # the module's global, for the one walk skops' import makes
    try:
        import skops.io
    finally:
        discovery.pkgutil = real
    return skops.io
