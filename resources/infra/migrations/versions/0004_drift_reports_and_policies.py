"""drift_reports: every drift check's outcome (resources/monitoring/drift_history.py), and
monitoring_policies: per model, when drift triggers a retraining (resources/monitoring/policies.py).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "drift_reports",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("model_id", sa.String(64), nullable=False),
        sa.Column("version", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("overall_drift", sa.Boolean, nullable=True),
        sa.Column("features_checked", sa.Integer, nullable=True),
        sa.Column("features_drifted", sa.Integer, nullable=True),
        sa.Column("report", sa.Text, nullable=True),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("dagster_run_id", sa.String(64), nullable=True),
    )
    op.create_index("ix_drift_reports_tenant_model_id", "drift_reports", ["tenant_id", "model_id", "id"])
    op.create_table(
        "monitoring_policies",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("model_id", sa.String(64), nullable=False),
        sa.Column("retrain_on_drift", sa.Boolean, nullable=False),
        sa.Column("consecutive_reports", sa.Integer, nullable=False),
        sa.Column("cooldown_hours", sa.Float, nullable=False),
        sa.Column("promote", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(256), nullable=False),
        sa.Column("last_triggered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_trigger_report_id", sa.Integer, nullable=True),
        sa.Column("last_trigger_job_id", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "model_id"),
    )


def downgrade() -> None:
    op.drop_table("monitoring_policies")
    op.drop_index("ix_drift_reports_tenant_model_id", table_name="drift_reports")
    op.drop_table("drift_reports")
