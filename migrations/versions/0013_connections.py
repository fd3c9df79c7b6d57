"""Connections to channels, their secrets sealed (see connections/vault.py).

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

from brandloop.db.rls import protect_tenant_table

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "connections",
        sa.Column("tenant_id", UUID, sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("id", UUID, nullable=False),
        sa.Column("connector", sa.String(32), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("config", JSONB, nullable=False),
        sa.Column("secrets", sa.LargeBinary, nullable=False),
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("grant_sealed", sa.LargeBinary),
        sa.Column("grant_expires_at", TIMESTAMP),
        sa.Column("authorized_at", TIMESTAMP),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_connections"),
        sa.UniqueConstraint("tenant_id", "connector", "name", name="uq_connections_tenant_id_connector_name"),
        sa.CheckConstraint("status IN ('pending', 'active', 'paused')", name="ck_connections_status"),
    )
    for statement in protect_tenant_table("connections", "SELECT, INSERT, UPDATE, DELETE"):
        op.execute(statement)
    # A webhook names its connection before the tenant is known: it may read that one row.
    op.execute(
        "CREATE POLICY connection_of_webhook ON connections FOR SELECT "
        "USING (id = (SELECT nullif(current_setting('app.webhook_connection', true), '')::uuid))"
    )
    op.create_table(
        "webhook_events",
        sa.Column("tenant_id", UUID, nullable=False),
        sa.Column("id", UUID, nullable=False),
        sa.Column("connection_id", UUID, nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(100), nullable=False),
        sa.Column("payload", JSONB, nullable=False),
        sa.Column("received_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.Column("processed_at", TIMESTAMP),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_webhook_events"),
        # A platform delivering the same event again stores nothing new.
        sa.UniqueConstraint("tenant_id", "connection_id", "key", name="uq_webhook_events_connection_id_key"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "connection_id"],
            ["connections.tenant_id", "connections.id"],
            name="fk_webhook_events_connection_id_connections",
            ondelete="CASCADE",
        ),
    )
    for statement in protect_tenant_table("webhook_events", "SELECT, INSERT, UPDATE"):
        op.execute(statement)
    op.create_table(
        "sync_checkpoints",
        sa.Column("tenant_id", UUID, nullable=False),
        sa.Column("connection_id", UUID, nullable=False),
        sa.Column("resource", sa.String(16), nullable=False),
        sa.Column("synced_until", TIMESTAMP, nullable=False),
        sa.Column("cursor", sa.String(1000)),
        sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("retry_at", TIMESTAMP),
        sa.Column("last_error", sa.String(500)),
        sa.Column("updated_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("tenant_id", "connection_id", "resource", name="pk_sync_checkpoints"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "connection_id"],
            ["connections.tenant_id", "connections.id"],
            name="fk_sync_checkpoints_connection_id_connections",
            ondelete="CASCADE",
        ),
    )
    for statement in protect_tenant_table("sync_checkpoints", "SELECT, INSERT, UPDATE"):
        op.execute(statement)


def downgrade() -> None:
    op.drop_table("sync_checkpoints")
    op.drop_table("webhook_events")
    op.drop_table("connections")
