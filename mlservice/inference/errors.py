"""Errors of the model core."""

from __future__ import annotations

from resources.errors import DomainError


class FeatureValidationError(DomainError):
    """Features that do not fit the model: 422 with a per-feature list."""

    code = "VALIDATION_ERROR"


class NonFiniteOutput(ValueError):
    """The model answered NaN or infinity (e.g. for a huge input): never sent as a prediction."""
