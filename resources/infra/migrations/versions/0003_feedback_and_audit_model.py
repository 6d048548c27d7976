"""prediction_feedback: the ground truth clients send for logged predictions (resources/predictions/feedback.py),
and audit_log.model_id: the model a call addressed, so monitoring can read one model's calls.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "prediction_feedback",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("model_id", sa.String(64), nullable=False),
        sa.Column("label", sa.Text, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "request_id"),
    )
    op.create_index("ix_prediction_feedback_tenant_model", "prediction_feedback", ["tenant_id", "model_id"])
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("model_id", sa.String(64), nullable=True))
        batch.create_index("ix_audit_log_tenant_model_time", ["tenant_id", "model_id", "at"])


def downgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_index("ix_audit_log_tenant_model_time")
        batch.drop_column("model_id")
    op.drop_index("ix_prediction_feedback_tenant_model", table_name="prediction_feedback")
    op.drop_table("prediction_feedback")
