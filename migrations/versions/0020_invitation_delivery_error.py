"""NPS invitations say why a channel did not take them (a follower gone, a quota reached), and
when a channel that failed for a passing reason is tried again.

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("nps_invitations", sa.Column("delivery_error", sa.String(300)))
    op.add_column("nps_invitations", sa.Column("delivery_retry_at", sa.DateTime(timezone=True)))
    op.create_index(
        "ix_nps_invitations_retry",
        "nps_invitations",
        ["tenant_id", "delivery_retry_at"],
        postgresql_where=sa.text("delivery_retry_at IS NOT NULL"),
    )
    # A channel's messages sent today, counted against its daily quota before each one.
    op.create_index(
        "ix_nps_invitations_delivered", "nps_invitations", ["tenant_id", "channel", "delivered_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_nps_invitations_delivered", "nps_invitations")
    op.drop_index("ix_nps_invitations_retry", "nps_invitations")
    op.drop_column("nps_invitations", "delivery_retry_at")
    op.drop_column("nps_invitations", "delivery_error")
