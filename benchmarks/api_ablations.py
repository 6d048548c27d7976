"""What-if variants of the platform API for the serving benchmark (investigation only).

``ABLATE=name,name,...`` selects monkeypatches applied before ``serving_api.main.create_app``
builds the app; run it as ``uvicorn api_ablations:create_app --factory`` with this directory on
PYTHONPATH (``serving_vs_mlflow.py --ablate ...`` does that). Nothing here changes the shipped
code.

- ``nolog``: the prediction log is NOT written (``record`` only builds the row). Only to measure
  what the durable log costs; not a proposal (the log is a requirement).

The earlier prototypes measured here (typed frames, verified fast predictors, async dependency
getters, the JWT verify cache, skipping the audit row of logged predictions, gc.freeze, WAL
checkpoints off the commit path, stale-while-revalidate resolution) are shipped in
``serving_api`` and ``resources.infra.state_db``; the README's "Serving benchmark" section has their
measured effect.
"""

from __future__ import annotations

import os
from typing import Any

ABLATIONS = {"nolog"}
ACTIVE = set(filter(None, os.environ.get("ABLATE", "").split(",")))
unknown = ACTIVE - ABLATIONS
if unknown:
    raise SystemExit(f"unknown ABLATE entries: {sorted(unknown)}; known: {sorted(ABLATIONS)}")


def _nolog() -> None:
    from resources.predictions.log import PredictionLog

    async def record(self, **fields: Any) -> None:
        self._row(fields)

    PredictionLog.record = record


def create_app():
    for name in sorted(ACTIVE):
        globals()[f"_{name}"]()
    from serving_api.main import create_app as create

    return create()
