"""Connection health and the sync engine's window: disabled and revoked connections, "sync now"
requests, the window a cursor belongs to, the last success and the records pulled in; pending
webhook events indexed.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.drop_constraint("ck_connections_status", "connections", type_="check")
    op.execute("UPDATE connections SET status = 'disabled' WHERE status = 'paused'")
    op.create_check_constraint(
        "ck_connections_status", "connections", "status IN ('pending', 'active', 'disabled', 'revoked')"
    )
    # An admin's "sync now", picked up by the job that also follows webhooks.
    op.add_column("connections", sa.Column("sync_requested_at", TIMESTAMP))
    # A cursor belongs to the window it was issued for: the window's end is kept with it.
    op.add_column("sync_checkpoints", sa.Column("window_until", TIMESTAMP))
    op.add_column("sync_checkpoints", sa.Column("last_success_at", TIMESTAMP))
    op.add_column(
        "sync_checkpoints", sa.Column("records_in", sa.BigInteger, nullable=False, server_default="0")
    )
    op.create_index(
        "ix_webhook_events_pending",
        "webhook_events",
        ["tenant_id", "connection_id", "received_at"],
        postgresql_where=sa.text("processed_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_events_pending", "webhook_events")
    op.drop_column("sync_checkpoints", "records_in")
    op.drop_column("sync_checkpoints", "last_success_at")
    op.drop_column("sync_checkpoints", "window_until")
    op.drop_column("connections", "sync_requested_at")
    op.drop_constraint("ck_connections_status", "connections", type_="check")
    op.execute("UPDATE connections SET status = 'paused' WHERE status = 'disabled'")
    op.execute("UPDATE connections SET status = 'pending' WHERE status = 'revoked'")
    op.create_check_constraint(
        "ck_connections_status", "connections", "status IN ('pending', 'active', 'paused')"
    )
