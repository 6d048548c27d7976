"""A deployment's fields as Ray Serve 2.60 options (the mapping the README states), and the cluster
fit check: what a change starts with must fit the cluster, else a 400 naming what is available."""

from __future__ import annotations

import pytest

from resources.deployments.serve_options import GIB, check_fits, deployment_options, initial_replicas
from resources.errors import InvalidRequest

REFERENCE = {"num_replicas": 2, "autoscaling": {"min_replicas": 1, "max_replicas": 10, "target_requests_per_replica": 5},
             "resources": {"cpu": 2, "memory_gb": 4, "gpu": 0}}


def test_the_references_fields_map_to_serve_options():
    options = deployment_options(REFERENCE)
    assert "num_replicas" not in options  # Serve refuses num_replicas beside an autoscaling config
    assert options["autoscaling_config"] == {"min_replicas": 1, "max_replicas": 10, "initial_replicas": 2,
                                             "target_ongoing_requests": 5.0, "upscale_delay_s": 30.0,
                                             "downscale_delay_s": 600.0}
    assert options["ray_actor_options"] == {"num_cpus": 2.0, "memory": 4 * GIB}  # no num_gpus for gpu 0
    assert options["max_surge_percent"] == 100 and options["max_queued_requests"] > 0
    fixed = deployment_options({"num_replicas": 3, "autoscaling": None, "resources": {"cpu": 0.25, "gpu": 1}})
    assert fixed["num_replicas"] == 3 and "autoscaling_config" not in fixed
    assert fixed["ray_actor_options"] == {"num_cpus": 0.25, "num_gpus": 1.0}


@pytest.mark.parametrize(("num", "low", "high", "expected"), [(2, 1, 10, 2), (0, 3, 10, 3), (20, 1, 10, 10)])
def test_autoscaling_starts_within_its_bounds(num, low, high, expected):
    spec = {"num_replicas": num, "autoscaling": {"min_replicas": low, "max_replicas": high}, "resources": {"cpu": 1}}
    assert initial_replicas(spec) == expected


def test_what_does_not_fit_names_what_the_cluster_has():
    with pytest.raises(InvalidRequest) as refused:
        check_fits(REFERENCE, {"CPU": 2.0, "memory": 8 * GIB})
    assert "2 replica(s) need 4 CPU, the cluster has 2" in refused.value.message
    assert refused.value.details["available"] == {"cpu": 2.0, "gpu": 0.0, "memory_gb": 8.0}
    fit = check_fits(REFERENCE, {"CPU": 64.0, "memory": 256 * GIB})
    assert fit.replicas == 2 and fit.warnings == []
    small = check_fits(REFERENCE, {"CPU": 4.0, "memory": 8 * GIB})
    assert small.warnings and "max_replicas is 10" in small.warnings[0]  # accepted, with a warning
    with pytest.raises(InvalidRequest, match="no GPU"):
        check_fits({**REFERENCE, "resources": {"cpu": 1, "gpu": 1}}, {"CPU": 64.0})
    canary = {"num_replicas": 1, "autoscaling": None, "resources": {"cpu": 1}}
    with pytest.raises(InvalidRequest):  # the stable replicas and the canary's together
        check_fits({**canary, "num_replicas": 2}, {"CPU": 2.5}, also=[canary])


def test_other_deployments_replicas_are_held_against_a_new_one():
    small = {"num_replicas": 2, "autoscaling": None, "resources": {"cpu": 0.5}}
    held = [{"num_replicas": 3, "autoscaling": None, "resources": {"cpu": 0.5}}]  # 1.5 of the cluster's 2 CPUs
    with pytest.raises(InvalidRequest) as refused:
        check_fits(small, {"CPU": 2.0}, held=held)
    assert "2 replica(s) need 1 CPU, the cluster has 2 of which other deployments hold 1.5" in refused.value.message
    assert refused.value.details["available"]["cpu"] == 0.5 and refused.value.details["cluster"]["cpu"] == 2.0
    assert check_fits({**small, "num_replicas": 1}, {"CPU": 2.0}, held=held).replicas == 1  # what is left still fits
