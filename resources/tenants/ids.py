"""Tenant ids: the one rule for what a tenant id may look like.

Tenant ids become parts of MLflow model names, directory names and Feast project names, so
they are restricted to letters, digits, '_' and '-' (no dots, no slashes).
"""

from __future__ import annotations

import re

from resources.errors import InvalidRequest

TENANT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def is_valid_tenant(tenant_id: object) -> bool:
    return isinstance(tenant_id, str) and bool(TENANT_RE.match(tenant_id))


def validate_tenant(tenant_id: str) -> str:
    if not is_valid_tenant(tenant_id):
        raise InvalidRequest("invalid tenant id")
    return tenant_id
