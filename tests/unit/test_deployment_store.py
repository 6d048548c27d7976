"""The deployments' desired-state store: one active deployment per tenant and model version,
generations, tenancy, events (newest first, bounded), deletion frees the version."""

from __future__ import annotations

import pytest

from resources.deployments import store as store_module
from resources.deployments.store import DeploymentExists, DeploymentNotFound, DeploymentStore

SPEC = {"num_replicas": 1, "autoscaling": None, "resources": {"cpu": 0.25, "memory_gb": None, "gpu": 0}}


def _create(store: DeploymentStore, tenant: str = "acme", version: str = "1.0.0", model_id: str = "m-1"):
    return store.create(tenant, model_id=model_id, model_name="churn", version=version, runtime="ray_serve", spec=SPEC,
                        created_by="alice")


def test_one_deployment_per_model_version_and_tenant(state):
    store = DeploymentStore(state)
    first = _create(store)
    assert (first.status, first.generation, first.applied_generation) == ("deploying", 1, None)
    assert first.deployment_id.startswith("dep-") and first.app_name == f"acme--{first.deployment_id}"
    with pytest.raises(DeploymentExists) as conflict:
        _create(store)
    assert conflict.value.details["deployment_id"] == first.deployment_id
    other_version = _create(store, version="1.1.0")
    other_tenant = _create(store, tenant="globex")  # the same ids in another tenant are another deployment
    assert len({first.deployment_id, other_version.deployment_id, other_tenant.deployment_id}) == 3
    with pytest.raises(DeploymentExists):  # moving to a version that has its own deployment
        store.change("acme", first.deployment_id, status="updating", event="updated", message="x", version="1.1.0")


def test_another_tenants_deployment_is_not_found(state):
    store = DeploymentStore(state)
    mine = _create(store)
    with pytest.raises(DeploymentNotFound):
        store.get("globex", mine.deployment_id)
    assert store.list("globex") == [] and [d.deployment_id for d in store.list("acme")] == [mine.deployment_id]


def test_changes_make_generations_with_events(state):
    store = DeploymentStore(state)
    record = _create(store)
    store.observe(record.deployment_id, status="running", event="running", message="1 replica running",
                  applied_generation=1, failed=False)
    changed = store.change("acme", record.deployment_id, status="updating", event="scaled", message="replicas 1 -> 2",
                           spec={**SPEC, "num_replicas": 2})
    assert (changed.generation, changed.applied_generation, changed.status, changed.spec["num_replicas"]) == (2, 1, "updating", 2)
    assert [e.kind for e in changed.events] == ["scaled", "running", "created"]
    moved = store.change("acme", record.deployment_id, status="updating", event="version", message="to 1.1.0", version="1.1.0")
    assert moved.version == "1.1.0" and moved.generation == 3
    fresh = _create(store, version="1.0.0")  # the version it left is free again
    assert (fresh.version, fresh.status) == ("1.0.0", "deploying")


def test_failures_count_until_reset(state):
    store = DeploymentStore(state)
    record = _create(store)
    for _ in range(3):
        store.observe(record.deployment_id, status="deploying", failed=True)
    assert store.get("acme", record.deployment_id).failures == 3
    store.observe(record.deployment_id, status="running", failed=False)
    assert store.get("acme", record.deployment_id).failures == 0


def test_deleting_frees_the_version_and_remove_makes_it_gone(state):
    store = DeploymentStore(state)
    record = _create(store)
    deleting = store.mark_deleting("acme", record.deployment_id)
    assert deleting.status == "deleting" and deleting.events[0].kind == "deleting"
    again = _create(store)  # the version may be deployed anew while the old app is removed
    store.remove(record.deployment_id)
    with pytest.raises(DeploymentNotFound):
        store.get("acme", record.deployment_id)
    assert store.get("acme", again.deployment_id).status == "deploying"


def test_events_are_bounded(state, monkeypatch):
    monkeypatch.setattr(store_module, "EVENTS_KEPT", 5)
    store = DeploymentStore(state)
    record = _create(store)
    for i in range(12):
        store.observe(record.deployment_id, status="running", event="tick", message=f"tick {i}")
    import sqlalchemy as sa

    with state.begin() as conn:
        kept = conn.execute(sa.select(sa.func.count()).select_from(store_module.deployment_events)).scalar_one()
    assert kept == 5
    assert [e.message for e in store.get("acme", record.deployment_id).events][:2] == ["tick 11", "tick 10"]
