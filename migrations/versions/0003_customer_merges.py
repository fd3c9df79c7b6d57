"""Customer merges: merged profiles point at their survivor; every merge is recorded to be undone.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

from brandloop.db.rls import protect_tenant_table

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("customers", sa.Column("merged_into_id", UUID))
    op.create_foreign_key(
        "fk_customers_tenant_id_merged_into_id_customers",
        "customers",
        "customers",
        ["tenant_id", "merged_into_id"],
        ["tenant_id", "id"],
        ondelete="CASCADE",  # deleting a person deletes the profiles merged into it too
    )
    # A merged profile keeps its fields for an unmerge; only active profiles hold an email.
    op.drop_index("uq_customers_tenant_id_email", "customers")
    op.create_index(
        "uq_customers_tenant_id_email",
        "customers",
        ["tenant_id", "email"],
        unique=True,
        postgresql_where=sa.text("email IS NOT NULL AND merged_into_id IS NULL"),
    )

    op.create_table(
        "customer_merges",
        sa.Column("tenant_id", UUID, nullable=False),
        sa.Column("id", UUID, nullable=False),
        sa.Column("survivor_id", UUID, nullable=False),
        sa.Column("merged_id", UUID, nullable=False),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("moved", JSONB, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.Column("undone_at", TIMESTAMP),
        sa.Column("undone_by", sa.String(200)),
        sa.PrimaryKeyConstraint("tenant_id", "id"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "survivor_id"], ["customers.tenant_id", "customers.id"], ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "merged_id"], ["customers.tenant_id", "customers.id"], ondelete="CASCADE"
        ),
    )
    op.create_index("ix_customer_merges_tenant_id_merged_id", "customer_merges", ["tenant_id", "merged_id"])
    op.create_index(
        "ix_customer_merges_tenant_id_survivor_id", "customer_merges", ["tenant_id", "survivor_id"]
    )
    for statement in protect_tenant_table("customer_merges", "SELECT, INSERT, UPDATE"):
        op.execute(statement)


def downgrade() -> None:
    op.drop_table("customer_merges")
    op.drop_index("uq_customers_tenant_id_email", "customers")
    op.create_index(
        "uq_customers_tenant_id_email",
        "customers",
        ["tenant_id", "email"],
        unique=True,
        postgresql_where=sa.text("email IS NOT NULL"),
    )
    op.drop_constraint("fk_customers_tenant_id_merged_into_id_customers", "customers", type_="foreignkey")
    op.drop_column("customers", "merged_into_id")
