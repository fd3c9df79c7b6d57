"""KPIs: what each viewer last saw of a dashboard's statuses (the alert list), and listings by day
for MAP compliance.

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

from brandloop.db.rls import protect_tenant_table

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kpi_alerts_seen",
        sa.Column("tenant_id", UUID, sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("viewer", sa.String(200), nullable=False),
        sa.Column("widget", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("tenant_id", "viewer", "widget", name="pk_kpi_alerts_seen"),
    )
    for statement in protect_tenant_table("kpi_alerts_seen"):
        op.execute(statement)
    # MAP compliance reads the listings of a period.
    op.create_index("ix_listing_observations_observed", "listing_observations", ["tenant_id", "observed_at"])


def downgrade() -> None:
    op.drop_index("ix_listing_observations_observed", "listing_observations")
    op.drop_table("kpi_alerts_seen")
