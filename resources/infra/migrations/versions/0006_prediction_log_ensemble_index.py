"""prediction_log: an index on (tenant_id, ensemble_id, at) for monitoring's ensemble records.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_prediction_log_tenant_ensemble_time", "prediction_log", ["tenant_id", "ensemble_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_prediction_log_tenant_ensemble_time", table_name="prediction_log")
