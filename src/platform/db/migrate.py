"""Alembic, driven from code so that `brandloop migrate`, `make serve` and the tests share it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

from brandloop import migrations

MIGRATIONS_DIR = Path(migrations.__file__).resolve().parent


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


LOCK = text("SELECT pg_advisory_xact_lock(hashtext('brandloop.migrate'))")
"""Two `brandloop migrate` (a job retried, two deploys) run one after the other, not together."""


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    async with engine.begin() as conn:
        await conn.execute(LOCK)
        await conn.run_sync(lambda sync: command.upgrade(_config(sync), revision))


async def wait_for_head(engine: AsyncEngine, interval: float = 5.0) -> None:
    """Until the database's schema is the code's (a migration job brings it there): API processes
    in production never migrate, they wait (bound it with `asyncio.timeout`)."""
    head = head_revision()
    while await current_revision(engine) != head:  # noqa: ASYNC110 (polling another process's work)
        await asyncio.sleep(interval)


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(lambda sync: command.downgrade(_config(sync), revision))


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_config()).get_current_head()


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(lambda sync: MigrationContext.configure(sync).get_current_revision())
