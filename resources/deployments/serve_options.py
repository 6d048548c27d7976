"""A deployment's spec (the API's fields) as Ray Serve deployment options, and whether it fits
the cluster.

Mapping, checked against Ray 2.60's defaults:

- ``num_replicas`` -> ``num_replicas``; with ``autoscaling`` it is the replicas Serve starts with
  (``initial_replicas``, clamped into min..max) and ``num_replicas`` is left unset (Serve refuses both);
- ``autoscaling``: ``min_replicas`` and ``max_replicas`` as given (Serve's default
  ``max_replicas`` is 1: the API requires it), ``target_requests_per_replica`` ->
  ``target_ongoing_requests``, ``upscale_delay_s`` / ``downscale_delay_s`` as given;
- ``resources``: ``cpu`` -> ``ray_actor_options.num_cpus``, ``memory_gb`` -> ``memory`` in bytes
  (a scheduling reservation: Ray places the replica where that much is unreserved; the process is
  not held to it), ``gpu`` -> ``num_gpus``;
- ``max_ongoing_requests`` per replica: ``MAX_ONGOING_REQUESTS`` (Serve's default 5 queues a
  micro-batch's worth of requests at the proxy; a replica batches up to ``MAX_BATCH_SIZE``), and
  ``max_queued_requests`` bounds what waits for a replica (beyond: 503 from Serve, a clear
  "overloaded" from the API) so one deployment's backlog cannot grow without bound;
- ``max_surge_percent`` 100: a roll starts the new replicas before it stops the old ones (measured
  on Ray 2.60: a one-replica deployment otherwise answers timeouts and 503s while it rolls, and a
  version whose replicas cannot start leaves nothing serving; with it, the old replicas keep
  serving). A change therefore needs room for the new replicas beside the old ones while it rolls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from resources.errors import InvalidRequest

MAX_ONGOING_REQUESTS = 32
# Replacements start before old replicas stop during every roll (Ray 2.60 rolls every replica on
# each serve.run, even for a new replica count); without it a one-replica deployment is down
# while its replacement starts, and a broken new version leaves nothing serving.
MAX_SURGE_PERCENT = 100
MAX_QUEUED_REQUESTS = 256
MAX_BATCH_SIZE = 32  # rows' requests a replica predicts in one call (@serve.batch)
BATCH_WAIT_S = 0.002
GIB = 1024**3


def initial_replicas(spec: dict[str, Any]) -> int:
    autoscaling = spec.get("autoscaling")
    if not autoscaling:
        return int(spec["num_replicas"])
    return min(max(int(spec["num_replicas"]), int(autoscaling["min_replicas"])), int(autoscaling["max_replicas"]))


def actor_options(resources: dict[str, Any]) -> dict[str, Any]:
    options: dict[str, Any] = {"num_cpus": float(resources["cpu"])}
    if resources.get("memory_gb"):
        options["memory"] = int(float(resources["memory_gb"]) * GIB)
    if resources.get("gpu"):
        options["num_gpus"] = float(resources["gpu"])
    return options


def deployment_options(spec: dict[str, Any]) -> dict[str, Any]:
    """The options of ``serve.deployment(...)`` / ``.options(...)`` for one version's replicas."""
    options: dict[str, Any] = {
        "ray_actor_options": actor_options(spec["resources"]),
        "max_ongoing_requests": MAX_ONGOING_REQUESTS,
        "max_queued_requests": MAX_QUEUED_REQUESTS,
        "max_surge_percent": MAX_SURGE_PERCENT,
    }
    autoscaling = spec.get("autoscaling")
    if autoscaling:
        options["autoscaling_config"] = {
            "min_replicas": int(autoscaling["min_replicas"]),
            "max_replicas": int(autoscaling["max_replicas"]),
            "initial_replicas": initial_replicas(spec),
            "target_ongoing_requests": float(autoscaling["target_requests_per_replica"]),
            "upscale_delay_s": float(autoscaling.get("upscale_delay_s", 30.0)),
            "downscale_delay_s": float(autoscaling.get("downscale_delay_s", 600.0)),
        }
    else:
        options["num_replicas"] = int(spec["num_replicas"])
    return options


@dataclass(frozen=True)
class ClusterFit:
    replicas: int  # what the spec starts with
    reserved: dict[str, float]  # what those replicas reserve
    cluster: dict[str, float]  # what the cluster has beside the other deployments' replicas
    warnings: list[str]


def reserved(specs: list[dict[str, Any]]) -> dict[str, float]:
    """What the replicas the specs start with reserve (CPU, GPU, memory in bytes)."""
    total = {"CPU": 0.0, "GPU": 0.0, "memory": 0.0}
    for spec in specs:
        n, res = initial_replicas(spec), spec["resources"]
        total["CPU"] += n * float(res["cpu"])
        total["GPU"] += n * float(res.get("gpu") or 0)
        total["memory"] += n * float(res.get("memory_gb") or 0) * GIB
    return total


def check_fits(spec: dict[str, Any], cluster: dict[str, float], *, also: list[dict[str, Any]] = (),
               held: list[dict[str, Any]] = ()) -> ClusterFit:
    """400 naming what the cluster has when the replicas a spec starts with (plus ``also``: the
    other versions the same deployment keeps running, e.g. a canary's stable version) cannot be
    placed beside ``held`` (the replicas other deployments keep: long-lived reservations, unlike a
    job's, which end); warnings for an autoscaling maximum beyond it."""
    resources = spec["resources"]
    replicas = initial_replicas(spec)
    want = reserved([spec, *also])
    others = reserved(list(held))
    total = {"CPU": float(cluster.get("CPU", 0)), "GPU": float(cluster.get("GPU", 0)), "memory": float(cluster.get("memory", 0))}
    have = {name: max(0.0, total[name] - others[name]) for name in total}
    if float(resources.get("gpu") or 0) > 0 and have["GPU"] < 1e-9:
        raise InvalidRequest("resources.gpu is set but the Ray cluster has no GPU",
                             {"requested": {"gpu": resources["gpu"]}, "available": _shown(have)})
    problems = [f"{replicas} replica(s) need {_amount(name, want[name])} {_unit(name)}, the cluster has {_amount(name, total[name])}"
                + (f" of which other deployments hold {_amount(name, others[name])}" if others[name] > 1e-9 else "")
                for name in ("CPU", "GPU", "memory") if want[name] > have[name] + 1e-9]
    if problems:
        raise InvalidRequest(
            "the deployment does not fit the Ray cluster: " + "; ".join(problems)
            + " (ask for fewer replicas or smaller resources, e.g. resources.cpu 0.25)",
            {"requested": {"replicas": replicas, **_shown(want)}, "available": _shown(have), "cluster": _shown(total)},
        )
    warnings = []
    autoscaling = spec.get("autoscaling")
    if autoscaling and float(resources["cpu"]) > 0:
        room = math.floor((have["CPU"] - want["CPU"]) / float(resources["cpu"]) + 1e-9) + replicas
        if autoscaling["max_replicas"] > room:
            warnings.append(f"autoscaling.max_replicas is {autoscaling['max_replicas']} but the cluster holds about "
                            f"{room} replica(s) of {resources['cpu']} CPU now: beyond that, replicas wait for resources")
    return ClusterFit(replicas, want, have, warnings)


def _unit(name: str) -> str:
    return {"CPU": "CPU", "GPU": "GPU", "memory": "GiB of memory"}[name]


def _amount(name: str, value: float) -> str:
    return f"{value / GIB:g}" if name == "memory" else f"{value:g}"


def _shown(values: dict[str, float]) -> dict[str, float]:
    return {"cpu": round(values["CPU"], 3), "gpu": round(values["GPU"], 3), "memory_gb": round(values["memory"] / GIB, 3)}


def canary_replica_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """A canary's replicas: one, with the stable version's resources."""
    return {"num_replicas": 1, "autoscaling": None, "resources": spec["resources"]}
