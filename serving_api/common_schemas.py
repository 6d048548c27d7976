"""Schema pieces shared by every domain."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from resources.schema_rules import refuse_lax_scalars


class StrictModel(BaseModel):
    """Request bodies: unknown fields are refused, so a typo is a 400, not a silent default; a
    number field refuses true/false (which pydantic would read as 1/0)."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _numbers_are_numbers(cls, data: Any) -> Any:
        return refuse_lax_scalars(cls, data)


class ErrorInfo(BaseModel):
    code: str
    message: str
    details: object | None = None
    request_id: str | None = None


class ErrorEnvelope(BaseModel):
    error: ErrorInfo
