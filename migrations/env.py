"""Alembic environment: runs revisions on the connection `brandloop.db.migrate` hands it."""

from __future__ import annotations

from alembic import context

# Every domain's tables, so that autogenerate compares the whole schema.
import brandloop.audit.models
import brandloop.auth.models
import brandloop.customers.models
import brandloop.orders.models
import brandloop.tenancy.models  # noqa: F401
from brandloop.db.base import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, transaction_per_migration=True)
with context.begin_transaction():
    context.run_migrations()
