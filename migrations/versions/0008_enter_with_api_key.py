"""Authenticate an API key in one statement: a function that enters the key's tenant.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27
"""

from __future__ import annotations

from alembic import op

from brandloop.db.session import APP_ROLE

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Runs as the caller (not SECURITY DEFINER): it switches the transaction to the app role,
    # reads the key through the prefix policy, and enters the key's tenant. The caller checks the
    # digest in constant time and ends the transaction when it does not match.
    op.execute(
        f"""
        CREATE FUNCTION brandloop_enter_with_api_key(key_prefix text)
        RETURNS TABLE (id uuid, tenant_id uuid, digest bytea, role text, expires_at timestamptz,
                       last_used_at timestamptz, revoked_at timestamptz, tenant_status text)
        LANGUAGE plpgsql AS $$
        DECLARE
            found record;
        BEGIN
            PERFORM set_config('role', '{APP_ROLE}', true), set_config('app.api_key_prefix', key_prefix, true);
            SELECT k.id, k.tenant_id, k.digest, k.role, k.expires_at, k.last_used_at, k.revoked_at,
                   (SELECT t.status FROM tenants t WHERE t.id = k.tenant_id) AS status
              INTO found FROM api_keys k WHERE k.prefix = key_prefix;
            PERFORM set_config('app.tenant_id', coalesce(found.tenant_id::text, ''), true),
                    set_config('app.api_key_prefix', '', true);
            IF found.id IS NOT NULL THEN
                RETURN QUERY SELECT found.id, found.tenant_id, found.digest, found.role::text, found.expires_at,
                                    found.last_used_at, found.revoked_at, found.status::text;
            END IF;
        END
        $$
        """
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION brandloop_enter_with_api_key(text)")
