"""What each version of a deployment answered, per 10-second slot: requests, errors and a latency
histogram, counted by the API processes that forward predictions to the deployment's Serve
applications (``TrafficCounter``, written every few seconds) and read by the reconciler to judge a
canary against the stable version over the same window.

An error is a request the version failed to answer (its replica raised, was unreachable, its
queue was full, or it answered something other than a prediction or a refusal of the client's
input); a 422 for the client's own features is not the version's error. Latency is what the API
waited for: Serve's proxy, the replica's queue and the prediction. Histograms have fixed buckets
(``BUCKETS_MS``), so slots and API processes add up exactly, and p99 is the upper edge of the
bucket that holds it.
"""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa

from resources.infra.state_db import StateStore, UTCDateTime, metadata

SLOT_S = 10  # the counts' time resolution: a canary's window starts at the first whole slot after it ran
BUCKETS_MS = (1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 2000, 5000, 10_000, 30_000)

deployment_traffic = sa.Table(
    "deployment_traffic",
    metadata,
    sa.Column("deployment_id", sa.String(64), primary_key=True),
    sa.Column("role", sa.String(16), primary_key=True),
    sa.Column("version", sa.String(64), primary_key=True),
    sa.Column("slot_start", UTCDateTime(), primary_key=True),
    sa.Column("requests", sa.Integer, nullable=False),
    sa.Column("errors", sa.Integer, nullable=False),
    sa.Column("latency_counts", sa.Text, nullable=False),  # JSON list, one count per bucket (+1 beyond the last)
)


def slot_of(at: datetime) -> datetime:
    """The start of the ``SLOT_S`` slot that holds ``at``."""
    return at.replace(second=at.second - at.second % SLOT_S, microsecond=0)


def bucket_of(latency_ms: float) -> int:
    return bisect.bisect_left(BUCKETS_MS, latency_ms)


@dataclass
class Traffic:
    requests: int = 0
    errors: int = 0
    counts: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS_MS) + 1))

    def add(self, ok: bool, latency_ms: float) -> None:
        self.requests += 1
        self.errors += 0 if ok else 1
        self.counts[bucket_of(latency_ms)] += 1

    def merge(self, requests: int, errors: int, counts: list[int]) -> None:
        self.requests += requests
        self.errors += errors
        self.counts = [a + b for a, b in zip(self.counts, counts, strict=True)]

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def quantile_floor_ms(self, q: float) -> float | None:
        """The lower edge of the bucket that holds the q-quantile (0 for the first): with ``quantile_ms``
        (its upper edge) the two bounds the histogram knows of the quantile."""
        upper = self.quantile_ms(q)
        if upper is None:
            return None
        index = len(BUCKETS_MS) if upper == float("inf") else BUCKETS_MS.index(upper)
        return float(BUCKETS_MS[index - 1]) if index else 0.0

    def quantile_ms(self, q: float) -> float | None:
        total = sum(self.counts)
        if not total:
            return None
        running = 0
        for index, count in enumerate(self.counts):
            running += count
            if running >= q * total:
                return float(BUCKETS_MS[index]) if index < len(BUCKETS_MS) else float("inf")
        return float("inf")


class TrafficCounter:
    """Counts in memory, per (deployment, role, version, slot), until drained into a ``TrafficStore``."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str, str, datetime], Traffic] = {}

    def add(self, deployment_id: str, role: str, version: str, ok: bool, latency_ms: float, at: datetime | None = None) -> None:
        from datetime import UTC

        slot = slot_of(at or datetime.now(UTC))
        self.counts.setdefault((deployment_id, role, version, slot), Traffic()).add(ok, latency_ms)

    def drain(self) -> dict[tuple[str, str, str, datetime], Traffic]:
        counts, self.counts = self.counts, {}
        return counts


class TrafficStore:
    def __init__(self, state: StateStore) -> None:
        self.state = state

    def add(self, deployment_id: str, role: str, version: str, slot_start: datetime, traffic: Traffic) -> None:
        """Add counts for one slot (several API processes and flushes add up)."""
        key = (deployment_traffic.c.deployment_id == deployment_id, deployment_traffic.c.role == role,
               deployment_traffic.c.version == version, deployment_traffic.c.slot_start == slot_start)
        with self.state.begin() as conn:
            row = conn.execute(sa.select(deployment_traffic).where(*key)).mappings().first()
            if row is None:
                try:
                    with conn.begin_nested():
                        conn.execute(deployment_traffic.insert().values(
                            deployment_id=deployment_id, role=role, version=version, slot_start=slot_start,
                            requests=traffic.requests, errors=traffic.errors, latency_counts=json.dumps(traffic.counts)))
                    return
                except sa.exc.IntegrityError:  # another process inserted the slot first
                    row = conn.execute(sa.select(deployment_traffic).where(*key)).mappings().one()
            merged = Traffic(row["requests"], row["errors"], json.loads(row["latency_counts"]))
            merged.merge(traffic.requests, traffic.errors, traffic.counts)
            conn.execute(deployment_traffic.update().where(*key).values(
                requests=merged.requests, errors=merged.errors, latency_counts=json.dumps(merged.counts)))

    def add_all(self, counts: dict[tuple[str, str, str, datetime], Traffic]) -> None:
        for (deployment_id, role, version, slot_start), traffic in counts.items():
            self.add(deployment_id, role, version, slot_start, traffic)

    def since(self, deployment_id: str, start: datetime) -> dict[tuple[str, str], Traffic]:
        """(role, version) -> the traffic of the slots from the one that holds ``start`` on."""
        query = sa.select(deployment_traffic).where(deployment_traffic.c.deployment_id == deployment_id,
                                                    deployment_traffic.c.slot_start >= slot_of(start))
        found: dict[tuple[str, str], Traffic] = {}
        with self.state.begin() as conn:
            for row in conn.execute(query).mappings():
                found.setdefault((row["role"], row["version"]), Traffic()).merge(
                    row["requests"], row["errors"], json.loads(row["latency_counts"]))
        return found

    def remove(self, deployment_id: str) -> None:
        with self.state.begin() as conn:
            conn.execute(deployment_traffic.delete().where(deployment_traffic.c.deployment_id == deployment_id))

    def prune(self, before: datetime) -> int:
        """Drop slots older than ``before`` (the reconciler keeps ``KEEP_DAYS``)."""
        with self.state.begin() as conn:
            return conn.execute(deployment_traffic.delete().where(deployment_traffic.c.slot_start < before)).rowcount


KEEP_DAYS = 7
