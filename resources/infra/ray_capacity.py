"""How many CPUs (or GPUs) a job can take on the Ray cluster now.

A job sized from the cluster's total waits for what others hold: on the 2-CPU test platform a Serve
replica of a quarter CPU left 1.75 free, and a two-worker fit asked for 2 and waited for them
until its maximum runtime (CI). Sized from what is free, it starts now with fewer workers."""

from __future__ import annotations


def free(resource: str = "CPU") -> float:
    """What the cluster has free of ``resource`` now (never more than its total)."""
    import ray

    total = float(ray.cluster_resources().get(resource, 0.0))
    return min(total, float(ray.available_resources().get(resource, 0.0)))


def workers_now(requested: int, resource: str = "CPU") -> int:
    """``requested`` workers of one ``resource`` each, fewer when fewer are free, at least one (which
    waits for a unit to free up when none is)."""
    return max(1, min(int(requested), int(free(resource))))
