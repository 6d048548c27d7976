"""Per-epoch progress sinks for trainers.

``MlflowProgress`` is picklable (it holds only the tracking URI and run id, and creates its
``MlflowClient`` lazily), so it can be shipped into Ray tasks and Ray Train workers and report
from there.
"""

from __future__ import annotations

import time
from typing import Any


class NullProgress:
    """Discards progress: the default when nobody listens."""

    def report(self, epoch: int, metrics: dict[str, float]) -> None:
        return None


class MlflowProgress:
    """Logs every metric at ``step=epoch`` (plus ``epoch`` itself) to one MLflow run."""

    def __init__(self, tracking_uri: str, run_id: str) -> None:
        self.tracking_uri = tracking_uri
        self.run_id = run_id
        self._client: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {"tracking_uri": self.tracking_uri, "run_id": self.run_id}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.tracking_uri = state["tracking_uri"]
        self.run_id = state["run_id"]
        self._client = None

    def _get_client(self):
        if self._client is None:
            from mlflow.tracking import MlflowClient

            from resources.infra.mlflow_plugins import skip_feast_header_provider

            skip_feast_header_provider()
            self._client = MlflowClient(tracking_uri=self.tracking_uri)
        return self._client

    def report(self, epoch: int, metrics: dict[str, float]) -> None:
        from mlflow.entities import Metric

        timestamp = int(time.time() * 1000)
        values = {**{k: v for k, v in metrics.items() if k != "epoch"}, "epoch": epoch}
        batch = [Metric(key=key, value=float(value), timestamp=timestamp, step=int(epoch)) for key, value in values.items()]
        self._get_client().log_batch(self.run_id, metrics=batch)

    def __repr__(self) -> str:
        return f"MlflowProgress(tracking_uri={self.tracking_uri!r}, run_id={self.run_id!r})"
