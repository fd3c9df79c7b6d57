"""SQL functions that write values exactly as the API does, for reads answered by PostgreSQL.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Python's datetime.isoformat() of a UTC time: microseconds only when there are some.
    op.execute(
        """
        CREATE FUNCTION brandloop_iso_time(value timestamptz) RETURNS text
        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
            SELECT to_char(value AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
                || CASE WHEN date_part('microseconds', value)::bigint % 1000000 = 0 THEN ''
                        ELSE to_char(value AT TIME ZONE 'UTC', '.US') END
                || '+00:00'
        $$
        """
    )
    # The API's opaque ids and cursors: unpadded url-safe base64 of "Type:uuid".
    op.execute(
        """
        CREATE FUNCTION brandloop_global_id(type_name text, id uuid) RETURNS text
        LANGUAGE sql STABLE PARALLEL SAFE AS $$
            SELECT rtrim(translate(encode(convert_to(type_name || ':' || id::text, 'UTF8'), 'base64'),
                                   E'+/\\n', '-_'), '=')
        $$
        """
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION brandloop_global_id(text, uuid)")
    op.execute("DROP FUNCTION brandloop_iso_time(timestamptz)")
