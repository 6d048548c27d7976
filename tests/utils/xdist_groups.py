"""Which tests run together on one pytest-xdist worker (``--dist loadgroup``, Makefile).

pytest-xdist's own ``loadgroup`` reads ``xdist_group`` marks by rewriting node ids, which pytest 9.2
no longer lets it do: its tests were spread one by one over the workers. This scheduler groups by
module path instead, which the controller sees in every node id:

- integration tier: every module that uses the shared platform in one group (one worker, name
  order, one platform), the modules with processes of their own in the other.
- everywhere else (the fast tier) a module is its own group: its module-scoped fixtures start once,
  and a module whose tests build on each other's state keeps its order.

pytest-xdist's scope schedulers key the work by node id, and schemathesis gives all the operations
of tests/api/test_fuzz_openapi.py one node id, so all but one of them silently did not run (seen:
1,267 of 1,320 tests). This one keys the work by collection index, as ``--dist load`` does: every
collected item runs, whatever its node id. ``check`` (called at collection) refuses a module the
list below puts in the wrong group.
"""

from __future__ import annotations

from pathlib import PurePosixPath

SHARED_PLATFORM, OWN_PROCESSES = "shared-platform", "own-processes"
# integration modules that start what they need themselves (no ``platform`` fixture): a platform of
# their own (``own_platform``, the scale profile's) or API processes they kill
OWN_PROCESS_MODULES = frozenset({
    "test_a_scale_profile.py", "test_api_kill.py", "test_prediction_log_kill.py", "test_deployments.py", "test_faults.py",
})


def group_of(nodeid: str) -> str:
    path = PurePosixPath(nodeid.split("::", 1)[0])
    if path.parts[:2] == ("tests", "integration"):
        return OWN_PROCESSES if path.name in OWN_PROCESS_MODULES else SHARED_PLATFORM
    return str(path)


def check(items, rootpath) -> list[str]:
    """The integration modules the list above misplaces."""
    wrong = set()
    for item in items:
        path = PurePosixPath(item.path.relative_to(rootpath))
        if path.parts[:2] == ("tests", "integration") and "platform" in item.fixturenames and group_of(item.nodeid) != SHARED_PLATFORM:
            wrong.add(f"{path} uses the shared platform: take it out of OWN_PROCESS_MODULES")
    return sorted(wrong)


def make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class ByGroup(LoadScopeScheduling):
        """LoadScopeScheduling with work units of collection indices (``{group: {index: done}}``)
        instead of node ids, grouped by ``group_of``."""

        def _split_scope(self, nodeid: str) -> str:
            return group_of(nodeid)

        def schedule(self) -> None:
            if self.collection is None:
                if not self._check_nodes_have_same_collection():  # it reported the difference
                    self.log("**Different tests collected, aborting run**")
                    return
                collection = list(next(iter(self.registered_collections.values())))
                units: dict[str, dict[int, bool]] = {}
                for index, nodeid in enumerate(collection):
                    units.setdefault(group_of(nodeid), {})[index] = False
                # the biggest groups first (pytest-xdist's --loadscope-reorder), so no big one comes last
                order = sorted(units, key=lambda group: -len(units[group])) if self.config.option.loadscopereorder else units
                self.workqueue.update((group, units[group]) for group in order)
                if len(self.workqueue) < len(self.nodes):  # more workers than groups
                    for _ in range(len(self.nodes) - len(self.workqueue)):
                        self.assigned_work.popitem()[0].shutdown()
                self.collection = collection
                for node in self.nodes:
                    self._assign_work_unit(node)
            super().schedule()  # with the collection set: more work for every node that needs it

        def _assign_work_unit(self, node) -> None:
            group, unit = self.workqueue.popitem(last=False)
            self.assigned_work.setdefault(node, {})[group] = unit
            node.send_runtest_some([index for index, done in unit.items() if not done])

        def mark_test_complete(self, node, item_index: int, duration: float = 0) -> None:
            self.assigned_work[node][group_of(self.collection[item_index])][item_index] = True
            self._reschedule(node)

        def remove_node(self, node) -> str | None:
            crashed = super().remove_node(node)  # the index of the test a crashed worker ran
            return None if crashed is None else self.collection[crashed]

    return ByGroup(config, log)
