"""The Dagster resources of the platform, named in one place.

Each system a Dagster asset or sensor asks for by type hint is a ``dagster.ConfigurableResource``
defined with its domain; this module names them all, so a reader finds the resources here and
their code beside the rules they serve. ``pipelines/resources.py`` builds them per environment
(through ``mlservice.config.wiring``) under the keys below.
"""

from __future__ import annotations

from resources.data.access import DataAccessPolicy
from resources.features.store import FeatureStoreResource
from resources.infra.ray_cluster import RayCluster
from resources.infra.state_db import StateStore
from resources.models.registry import ModelRegistry
from resources.tenants.quotas import TenantQuotas

__all__ = ["DataAccessPolicy", "FeatureStoreResource", "ModelRegistry", "RayCluster", "StateStore", "TenantQuotas"]
