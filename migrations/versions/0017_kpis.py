"""KPIs: daily roll-ups (customer-days, survey-days, points-days), marketing spend, targets,
dashboards, and how far the roll-ups have read.

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

from brandloop.db.rls import protect_tenant_table

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    # The roll-up job reads the orders changed since it last looked.
    op.create_index("ix_orders_updated", "orders", ["tenant_id", "updated_at"])
    op.create_table(
        "kpi_customer_days",
        sa.Column("tenant_id", UUID, sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        # Orders without a known buyer are kept under the nil id, out of customer counts.
        sa.Column("customer_id", UUID, nullable=False),
        sa.Column("orders", sa.Integer, nullable=False),
        sa.Column("gmv", sa.BigInteger, nullable=False),
        sa.Column("unconverted", sa.Integer, nullable=False),
        sa.Column("first_day", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "day", "channel", "customer_id", name="pk_kpi_customer_days"),
    )
    op.create_index("ix_kpi_customer_days_customer", "kpi_customer_days", ["tenant_id", "customer_id"])
    op.create_table(
        "kpi_survey_days",
        sa.Column("tenant_id", UUID, sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("promoters", sa.Integer, nullable=False),
        sa.Column("passives", sa.Integer, nullable=False),
        sa.Column("detractors", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "day", "channel", name="pk_kpi_survey_days"),
    )
    op.create_table(
        "kpi_points_days",
        sa.Column("tenant_id", UUID, sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("issued", sa.BigInteger, nullable=False),
        sa.Column("redeemed", sa.BigInteger, nullable=False),
        sa.Column("expired", sa.BigInteger, nullable=False),
        sa.Column("net", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "day", name="pk_kpi_points_days"),
    )
    op.create_table(
        "kpi_watermarks",
        sa.Column("tenant_id", UUID, sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("read_until", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name="pk_kpi_watermarks"),
    )
    op.create_table(
        "marketing_spend",
        sa.Column("tenant_id", UUID, sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("id", UUID, nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("day_from", sa.Date, nullable=False),
        sa.Column("day_until", sa.Date, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("note", sa.String(500)),
        sa.Column("created_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_marketing_spend"),
        sa.CheckConstraint("day_until >= day_from", name="ck_marketing_spend_period"),
        sa.CheckConstraint("amount >= 0", name="ck_marketing_spend_amount"),
    )
    op.create_index("ix_marketing_spend_period", "marketing_spend", ["tenant_id", "day_from"])
    op.create_table(
        "kpi_targets",
        sa.Column("tenant_id", UUID, sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("id", UUID, nullable=False),
        sa.Column("kpi", sa.String(40), nullable=False),
        sa.Column("day_from", sa.Date, nullable=False),
        sa.Column("day_until", sa.Date, nullable=False),
        sa.Column("channel", sa.String(32)),
        sa.Column("target", sa.Numeric(20, 6), nullable=False),
        sa.Column("at_risk_within", sa.Numeric(6, 4), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_kpi_targets"),
        sa.CheckConstraint("day_until >= day_from", name="ck_kpi_targets_period"),
    )
    op.create_index("ix_kpi_targets_kpi", "kpi_targets", ["tenant_id", "kpi", "day_from"])
    op.create_table(
        "dashboards",
        sa.Column("tenant_id", UUID, sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("id", UUID, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("widgets", JSONB, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_dashboards"),
    )
    for table in (
        "kpi_customer_days",
        "kpi_survey_days",
        "kpi_points_days",
        "kpi_watermarks",
        "marketing_spend",
        "kpi_targets",
        "dashboards",
    ):
        for statement in protect_tenant_table(table):
            op.execute(statement)


def downgrade() -> None:
    for table in (
        "dashboards",
        "kpi_targets",
        "marketing_spend",
        "kpi_watermarks",
        "kpi_points_days",
        "kpi_survey_days",
        "kpi_customer_days",
    ):
        op.drop_table(table)
    op.drop_index("ix_orders_updated", "orders")
