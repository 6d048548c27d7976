"""The audit log: oversized fields are cut to their columns (and NULs replaced) before they can
fail a batch, and a batch that fails because of one row still writes every other row."""

from __future__ import annotations

import pytest

from resources.infra.state_db import utcnow
from resources.tenants.audit import AuditLog, audit_log


@pytest.fixture
def audit(state):
    return AuditLog(state)


def _row(request_id: str, tenant: str, **extra) -> dict:
    values = dict(at=utcnow(), request_id=request_id, tenant_id=tenant, subject="u", method="POST",
                  path="/api/v1/models", status=201, error_code=None)
    values.update(extra)
    return values


def test_fields_are_cut_to_their_columns(audit):
    audit.record(request_id="r" * 500, tenant_id="t" * 100, subject="s" * 1000, method="M" * 40,
                 path="/api/v1/" + "p" * 10_000 + "\x00", status=401, error_code="E" * 200, model_id="m" * 100)
    [row] = audit.records()
    for column in ("request_id", "tenant_id", "subject", "method", "path", "error_code", "model_id"):
        assert len(row[column]) == audit_log.c[column].type.length, column
    assert "\x00" not in row["path"]


def test_a_batch_with_a_failing_row_still_writes_the_others(audit):
    batch = [_row(f"ok-{i}", f"tenant-{i % 3}") for i in range(10)]
    batch.insert(4, _row("bad", "tenant-x", status=None))  # NOT NULL: this row cannot be written
    audit.write(batch)
    written = {r["request_id"] for r in audit.records(limit=100)}
    assert written == {f"ok-{i}" for i in range(10)}
    assert audit.records_failed == 1

