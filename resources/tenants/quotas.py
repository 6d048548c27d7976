"""Per-tenant quotas: what one tenant may hold at once, so no tenant fills what all tenants share.

Quotas (``MLSERVICE_QUOTAS``, per tenant ``MLSERVICE_QUOTA_OVERRIDES``, merged field by field by
``Settings.quotas_for``): ``models`` (registered models), ``versions_per_model``, ``ensembles``,
``deployments`` and ``concurrent_jobs`` (jobs submitted through the API and not yet ended). ``TenantQuotas`` is
built from the settings in ``serving_api/wiring.py`` (API and Dagster alike) and checked by the
registry (``create_model``, ``register_version``: the API routes and the training assets), the
ensemble service and the job service. Holding as many as allowed answers 409 ``QUOTA_EXCEEDED``
naming the quota and its value; for jobs 429 ``JOB_LIMIT_REACHED`` with ``Retry-After`` (a slot
frees when a job ends). ``None`` instead of a ``TenantQuotas`` means unlimited.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dagster as dg

from resources.errors import JobLimitReached, QuotaExceeded

QUOTAS = {"models": "registered models", "versions_per_model": "versions of one model",
          "ensembles": "ensembles", "concurrent_jobs": "unfinished jobs at once", "deployments": "deployments"}
JOB_RETRY_AFTER_S = 30
MLFLOW_PAGE = 1000  # the most models one MLflow search returns


class TenantQuotas(dg.ConfigurableResource):
    """The quotas of every tenant: the defaults, and each overridden tenant's merged values."""

    defaults: dict[str, int]
    tenants: dict[str, dict[str, int]] = {}  # noqa: RUF012 (pydantic copies field defaults per instance)

    def limit(self, tenant_id: str, quota: str) -> int:
        return self.tenants.get(tenant_id, self.defaults)[quota]

    def check(self, tenant_id: str, quota: str, count: Callable[[int], int]) -> None:
        """Refuse one more when the tenant already holds its quota. ``count(limit)`` says how many
        it holds; it may stop counting at ``limit``."""
        limit = self.limit(tenant_id, quota)
        held = count(limit) if limit > 0 else 0
        if held < limit:
            return
        details: dict[str, Any] = {"quota": quota, "limit": limit, "held": held}
        if quota == "concurrent_jobs":
            error = JobLimitReached(f"job limit reached: {quota} is {limit} for this tenant ({QUOTAS[quota]}); "
                                    f"retry when one ends", {**details, "retry_after_s": JOB_RETRY_AFTER_S})
            error.headers = {"Retry-After": str(JOB_RETRY_AFTER_S)}  # read by the API's error handler
            raise error
        raise QuotaExceeded(f"quota exceeded: {quota} is {limit} for this tenant ({QUOTAS[quota]})", details)


def models_held(registry: Any, tenant_id: str, up_to: int) -> int:
    """The tenant's registered models (a search on the tenant tag), counted up to ``up_to``."""
    return count_up_to(lambda size, cursor: registry.list_models(tenant_id, limit=size, cursor=cursor), up_to)


def count_up_to(fetch_page: Callable[[int, str | None], tuple[list, str | None]], up_to: int) -> int:
    """How many items a paged listing holds, counting no further than ``up_to``.
    ``fetch_page(size, cursor) -> (items, next_cursor)``."""
    held, cursor = 0, None
    while held < up_to:
        items, cursor = fetch_page(min(MLFLOW_PAGE, up_to - held), cursor)
        held += len(items)
        if not cursor:
            break
    return held
