"""The platform's Dagster instance: Dagster's own, with the run worker's cancellation thread on.

A run cancelled while it starts (the API's cancel, a tenant's quota, the maximum runtime) may get
no interrupt: Dagster's launcher sends the termination to the run's code server only once the
run carries its code server's address, and until then it can only mark the run CANCELING, which
the worker does not read. Found on the test platform: a training run cancelled 3 s after its
submission ran its whole fit (holding a CPU for minutes) while the job read ``cancelled``.

Dagster's run worker has a thread for this (``dagster._core.execution.run_cancellation_thread``:
every ``run_monitoring.cancellation_thread_poll_interval_seconds`` it reads the run's status and
interrupts the worker once it is CANCELING, CANCELED or FAILURE), gated on this property, which
the open-source instance keeps off. The interrupt is the one a delivered termination raises, so
what the assets do then (Ray tasks cancelled, staged output discarded) is the same.

Configured in dagster.yaml (``instance_class``); every process of the platform reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dagster import DagsterInstance


class PlatformInstance(DagsterInstance):
    # what Dagster asks a custom instance class for: no settings of its own, Dagster's defaults
    @classmethod
    def config_schema(cls) -> dict[str, Any]:
        return {}

    @staticmethod
    def config_defaults(base_dir: str) -> Mapping[str, Any]:
        from dagster._core.instance.ref import InstanceRef

        return InstanceRef.config_defaults(base_dir)

    @property
    def should_start_background_run_thread(self) -> bool:
        return True
