"""The job queue: pgqueuer's tables, types and notify trigger (platform tables, no tenant).

The DDL is pgqueuer's own, rendered by the installed version (pinned below 2 in pyproject.toml);
a later pgqueuer version brings its own upgrade. Jobs carry their tenant in the payload and run
in the tenant's transaction; the application role does not touch these tables.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-27
"""

from __future__ import annotations

from alembic import op
from pgqueuer.adapters.persistence.qb import QueryBuilderEnvironment
from sqlalchemy.util import await_

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def _script(sql: str) -> None:
    """A multi-statement script, in the migration's transaction: asyncpg prepares one statement
    at a time, so it goes through the driver's simple query protocol."""
    await_(op.get_bind().connection.driver_connection.execute(sql))


def upgrade() -> None:
    _script(QueryBuilderEnvironment().build_install_query(create_schema=False))


def downgrade() -> None:
    _script(QueryBuilderEnvironment().build_uninstall_query())
