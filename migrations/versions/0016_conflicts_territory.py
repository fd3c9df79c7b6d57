"""Channel conflicts, second slice: where an order shipped and who sold it (territory conflicts),
orders as evidence, attachments, confirmed conflicts and the escalation ladder.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, UUID

from brandloop.db.rls import protect_tenant_table

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)
LADDER = "'{warning,formal_notice,supply_hold,termination}'"


def upgrade() -> None:
    op.add_column("orders", sa.Column("ship_region", sa.String(6)))
    op.add_column("orders", sa.Column("seller_id", sa.String(128)))
    # Territory detection reads the orders changed since it last looked, and only those it can judge.
    op.create_index(
        "ix_orders_territory",
        "orders",
        ["tenant_id", "updated_at"],
        postgresql_where=sa.text("ship_region IS NOT NULL AND seller_id IS NOT NULL"),
    )
    op.add_column("conflict_evidence", sa.Column("order_id", UUID))
    op.add_column(
        "conflict_evidence",
        sa.Column("attachments", ARRAY(sa.String(2000)), nullable=False, server_default="{}"),
    )
    op.create_unique_constraint(
        "uq_conflict_evidence_order", "conflict_evidence", ["tenant_id", "conflict_id", "order_id"]
    )
    op.add_column("conflicts", sa.Column("confirmed", sa.Boolean, nullable=False, server_default="false"))
    op.add_column(
        "tenant_settings",
        sa.Column("escalation_ladder", ARRAY(sa.String(40)), nullable=False, server_default=sa.text(LADDER)),
    )
    op.create_table(
        "conflict_watermarks",
        sa.Column("tenant_id", UUID, sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("orders_until", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name="pk_conflict_watermarks"),
    )
    for statement in protect_tenant_table("conflict_watermarks", "SELECT, INSERT, UPDATE"):
        op.execute(statement)


def downgrade() -> None:
    op.drop_table("conflict_watermarks")
    op.drop_column("tenant_settings", "escalation_ladder")
    op.drop_column("conflicts", "confirmed")
    op.drop_constraint("uq_conflict_evidence_order", "conflict_evidence", type_="unique")
    op.drop_column("conflict_evidence", "attachments")
    op.drop_column("conflict_evidence", "order_id")
    op.drop_index("ix_orders_territory", "orders")
    op.drop_column("orders", "seller_id")
    op.drop_column("orders", "ship_region")
