"""The alembic revisions, shipped inside the distribution as `brandloop.migrations` so that an
installed image can migrate (`brandloop migrate`); `versions/` travels as package data."""
