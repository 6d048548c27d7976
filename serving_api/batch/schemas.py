"""Request and response bodies of batch predictions (``/api/v1/predictions/batch``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from resources.jobs.limits import MAX_KEEP_COLUMNS, MAX_SCORING_BATCH_SIZE
from resources.vocabulary import OnInvalid
from serving_api.common_schemas import StrictModel


class BatchCreate(StrictModel):
    model_id: str = Field(min_length=1, max_length=64)
    input_path: str = Field(min_length=1, max_length=1024, description="parquet file or folder: relative, file:// or s3://")
    output_path: str = Field(min_length=1, max_length=1024, description="output folder: relative, file:// or s3://")
    batch_size: int = Field(default=1000, ge=1, le=MAX_SCORING_BATCH_SIZE)
    version: str | None = Field(default=None, max_length=64, description="semver or stage; default production, else newest")
    keep_columns: list[str] | None = Field(default=None, max_length=MAX_KEEP_COLUMNS)
    on_invalid: OnInvalid = "fail"
    overwrite: bool = False


class BatchAccepted(BaseModel):
    job_id: str
    status: str
    estimated_completion: datetime
    model_id: str
    version: str
    rows_total: int


class BatchStatus(BaseModel):
    job_id: str
    status: str
    model_id: str
    version: str | None
    input_path: str
    output_path: str
    rows_total: int | None
    rows_done: int
    rows_rejected: int
    throughput_rows_per_s: float | None  # while it scores: its speed so far; once it ended: rows over the whole run
    scoring_rows_per_s: float | None = None  # once it ended: rows over the time after its first rows were written
    first_rows_at: datetime | None = None  # when its first scored rows were written (the end of its start-up)
    estimated_completion: datetime | None
    files: list[str] = Field(default_factory=list)
    error: str | None = None
    rejected_examples: list[dict[str, Any]] = Field(default_factory=list)
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    dagster_run_id: str | None
    dagster_run_url: str | None
