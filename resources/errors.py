"""Domain errors shared by the API and the Dagster side.

Each carries a stable ``code`` from the API reference; the HTTP layer maps codes to status
codes in one table (``serving_api/errors.py``), so resources stay free of HTTP.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    code = "INVALID_REQUEST"

    def __init__(self, message: str, details: Any = None):
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidRequest(DomainError):
    code = "INVALID_REQUEST"


class ModelNotFound(DomainError):
    code = "MODEL_NOT_FOUND"

    def __init__(self, model_id: str):
        super().__init__(f"model '{model_id}' not found", {"model_id": model_id})


class VersionNotFound(DomainError):
    code = "VERSION_NOT_FOUND"

    def __init__(self, model_id: str, version: str):
        super().__init__(
            f"version '{version}' of model '{model_id}' not found",
            {"model_id": model_id, "version": version},
        )


class ModelAlreadyExists(DomainError):
    code = "MODEL_ALREADY_EXISTS"


class VersionAlreadyExists(DomainError):
    code = "VERSION_ALREADY_EXISTS"


class StageConflict(DomainError):
    code = "STAGE_CONFLICT"


class OutputExists(DomainError):
    """A batch job's output path holds files and the request did not ask to overwrite them (409)."""

    code = "OUTPUT_EXISTS"


class DependencyUnavailable(DomainError):
    """A backing system (MLflow, Dagster) did not answer; ``retry_after_s``: when to try again, if known
    (the HTTP layer sends it as Retry-After)."""

    code = "SERVICE_UNAVAILABLE"

    def __init__(self, message: str, details: Any = None, retry_after_s: float | None = None):
        super().__init__(message, details)
        self.retry_after_s = retry_after_s


class RayUnavailable(DomainError):
    code = "RAY_UNAVAILABLE"


# -- bounds and trust ----------------------------------------------------------------------------
class QuotaExceeded(DomainError):
    """The tenant holds as many models / versions / ensembles as its quota allows (409)."""

    code = "QUOTA_EXCEEDED"


class JobLimitReached(DomainError):
    """The tenant has as many unfinished jobs as it may run at once (429; retry when one ends)."""

    code = "JOB_LIMIT_REACHED"


class ModelNotVerified(DomainError):
    """A version with no artifact record: it was not registered through the platform (503)."""

    code = "MODEL_NOT_VERIFIED"


class ModelArtifactChanged(DomainError):
    """The artifact's files no longer match the digest recorded at registration (503)."""

    code = "MODEL_ARTIFACT_CHANGED"


class ModelLoadFailed(DomainError):
    """A verified version that could not be loaded (its files do not rebuild a model here) (503)."""

    code = "MODEL_LOAD_FAILED"


# -- feature store (resources/features/store.py) ------------------------------------------------
class FeatureRefInvalid(InvalidRequest):
    """A feature reference that is not ``<feature_view>:<feature>`` (or a request that cannot be
    answered as asked, e.g. two views' features with the same bare name): 400."""

    code = "INVALID_REQUEST"


class FeatureStoreNotFound(DomainError):
    """The tenant has no feature store (no feature data applied yet)."""

    code = "FEATURE_STORE_NOT_FOUND"

    def __init__(self, tenant_id: str, why: str = "no feature store for this tenant"):
        super().__init__(why, {"tenant_id": tenant_id})


class FeatureViewNotFound(DomainError):
    code = "FEATURE_VIEW_NOT_FOUND"

    def __init__(self, view: str):
        super().__init__(f"feature view '{view}' not found", {"feature_view": view})


class FeatureNotFound(DomainError):
    code = "FEATURE_NOT_FOUND"

    def __init__(self, view: str, feature: str):
        super().__init__(
            f"feature '{feature}' not found in feature view '{view}'",
            {"feature_view": view, "feature": feature, "feature_ref": f"{view}:{feature}"},
        )


class FeatureServiceNotFound(DomainError):
    code = "FEATURE_SERVICE_NOT_FOUND"

    def __init__(self, name: str):
        super().__init__(f"feature service '{name}' not found", {"feature_service": name})


class FeatureDefinitionInUse(DomainError):
    """A change of feature definitions takes a view, feature or service away from a production model (409)."""

    code = "FEATURE_DEFINITION_IN_USE"


class FeatureDefinitionsConflict(DomainError):
    """Another change of the tenant's feature definitions was applied meanwhile (409: read and retry)."""

    code = "FEATURE_DEFINITIONS_CONFLICT"


class FeatureDefinitionsNotFound(DomainError):
    code = "FEATURE_DEFINITIONS_NOT_FOUND"


class InsufficientData(DomainError):
    """Too few values on either side of every requested feature to test drift: no p-value is made up."""

    code = "INSUFFICIENT_DATA"


class ReferenceNotFound(DomainError):
    """The version has no reference sample (not trained by the platform, none set)."""

    code = "REFERENCE_NOT_FOUND"


class PolicyNotFound(DomainError):
    """The model has no monitoring policy (none was ever set)."""

    code = "POLICY_NOT_FOUND"
