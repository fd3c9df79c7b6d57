"""Let the API-key lookup read its tenant's status in the same statement.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Visible while authenticating with a key: the tenant of the one key whose prefix is set
    # (the lookup policy on api_keys already limits that subquery to that key).
    op.execute(
        """
        CREATE POLICY tenant_of_key ON tenants FOR SELECT
        USING (id IN (SELECT tenant_id FROM api_keys
                       WHERE prefix = (SELECT nullif(current_setting('app.api_key_prefix', true), ''))))
        """
    )


def downgrade() -> None:
    op.execute("DROP POLICY tenant_of_key ON tenants")
