"""deployment_traffic: per deployment, role, version and 10-second slot, the requests, errors and latency
histogram its router saw (resources/deployments/traffic.py).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deployment_traffic",
        sa.Column("deployment_id", sa.String(64), primary_key=True),
        sa.Column("role", sa.String(16), primary_key=True),
        sa.Column("version", sa.String(64), primary_key=True),
        sa.Column("slot_start", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("requests", sa.Integer, nullable=False),
        sa.Column("errors", sa.Integer, nullable=False),
        sa.Column("latency_counts", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("deployment_traffic")
