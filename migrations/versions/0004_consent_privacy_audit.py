"""Consents, erasure, and the audit log.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

from brandloop.db.rls import protect_tenant_table
from brandloop.db.session import APP_ROLE

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("customers", sa.Column("erased_at", TIMESTAMP))

    op.create_table(
        "consents",
        sa.Column("tenant_id", UUID, nullable=False),
        sa.Column("id", UUID, nullable=False),
        sa.Column("customer_id", UUID, nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("granted", sa.Boolean, nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("evidence", sa.String(1000)),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("recorded_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("tenant_id", "id"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"], ondelete="CASCADE"
        ),
        sa.CheckConstraint("purpose IN ('marketing', 'surveys')", name="ck_consents_purpose"),
    )
    op.create_index(
        "ix_consents_tenant_id_customer_id_channel_purpose",
        "consents",
        ["tenant_id", "customer_id", "channel", "purpose", "recorded_at"],
    )
    # Consents are appended, never edited; a merge moves them (customer_id) and an erasure
    # removes them with the person.
    for statement in protect_tenant_table("consents", "SELECT, INSERT, DELETE"):
        op.execute(statement)
    op.execute(f"GRANT UPDATE (customer_id) ON consents TO {APP_ROLE}")

    op.create_table(
        "erased_identities",
        sa.Column("tenant_id", UUID, sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("digest", sa.LargeBinary(32), nullable=False),
        sa.Column("erased_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("tenant_id", "digest"),
    )
    for statement in protect_tenant_table("erased_identities", "SELECT, INSERT"):
        op.execute(statement)

    op.create_table(
        "audit_log",
        sa.Column("tenant_id", UUID, sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("id", UUID, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target_type", sa.String(32), nullable=False),
        sa.Column("target_id", sa.String(64)),
        sa.Column("before", JSONB),
        sa.Column("after", JSONB),
        sa.Column("created_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("tenant_id", "id"),
    )
    op.create_index("ix_audit_log_tenant_id_target_id", "audit_log", ["tenant_id", "target_id"])
    # Append-only for the application: no UPDATE, no DELETE.
    for statement in protect_tenant_table("audit_log", "SELECT, INSERT"):
        op.execute(statement)


def downgrade() -> None:
    op.drop_table("audit_log")
    op.drop_table("erased_identities")
    op.drop_table("consents")
    op.drop_column("customers", "erased_at")
