"""Migrations go up, down and up again on an empty database, and leave the same schema."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from brandloop.db import migrate
from brandloop.db.engine import create_engine

SNAPSHOT = text(
    """
    SELECT table_name, column_name, data_type, is_nullable
      FROM information_schema.columns WHERE table_schema = 'public'
     ORDER BY table_name, column_name
    """
)
POLICIES = text("SELECT tablename, policyname, qual FROM pg_policies ORDER BY 1, 2")


@pytest.fixture
async def scratch(server_url: str) -> AsyncIterator[AsyncEngine]:
    name = f"brandloop_migrations_{uuid.uuid4().hex[:10]}"
    admin = create_engine(make_url(server_url).set(drivername="postgresql+asyncpg").render_as_string(False))
    async with admin.connect() as conn:
        await (await conn.execution_options(isolation_level="AUTOCOMMIT")).execute(
            text(f'CREATE DATABASE "{name}"')
        )
    engine = create_engine(
        make_url(server_url).set(drivername="postgresql+asyncpg", database=name).render_as_string(False)
    )
    try:
        yield engine
    finally:
        await engine.dispose()
        async with admin.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


async def snapshot(engine: AsyncEngine) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    async with engine.connect() as conn:
        columns = [tuple(r) for r in (await conn.execute(SNAPSHOT)).all()]
        policies = [tuple(r) for r in (await conn.execute(POLICIES)).all()]
    return columns, policies


async def test_up_down_up(scratch: AsyncEngine) -> None:
    await migrate.upgrade(scratch)
    assert await migrate.current_revision(scratch) == migrate.head_revision()
    first = await snapshot(scratch)
    assert first[0] and first[1]

    await migrate.downgrade(scratch, "base")
    assert await migrate.current_revision(scratch) is None
    columns, policies = await snapshot(scratch)
    assert [c for c in columns if c[0] != "alembic_version"] == []
    assert policies == []

    await migrate.upgrade(scratch)
    assert await snapshot(scratch) == first


async def test_upgrading_twice_is_harmless(scratch: AsyncEngine) -> None:
    await migrate.upgrade(scratch)
    await migrate.upgrade(scratch)
    assert await migrate.current_revision(scratch) == migrate.head_revision()


async def test_concurrent_migrations_take_turns_and_api_processes_wait_for_them(scratch: AsyncEngine) -> None:
    await migrate.upgrade(scratch, "0015")
    # An API process in production waits for the schema rather than migrating it.
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await migrate.wait_for_head(scratch, interval=0.05)
    # Two `brandloop migrate` at once (a retried job, two deploys): one waits for the other.
    await asyncio.gather(migrate.upgrade(scratch), migrate.upgrade(scratch))
    assert await migrate.current_revision(scratch) == migrate.head_revision()
    async with asyncio.timeout(5):
        await migrate.wait_for_head(scratch, interval=0.05)


async def test_0019_carries_channel_breakdowns_and_targets_over_and_back(scratch: AsyncEngine) -> None:
    await migrate.upgrade(scratch, "0018")
    tenant = uuid.uuid4()
    widgets = '[{"kpi": "gmv", "breakdown": true}, {"kpi": "orders", "breakdown": false}]'
    async with scratch.begin() as conn:
        await conn.execute(
            text("INSERT INTO tenants (id, slug, name) VALUES (:t, 'mig', 'Mig')"), {"t": tenant}
        )
        await conn.execute(
            text(
                "INSERT INTO dashboards (tenant_id, id, name, widgets) VALUES (:t, :t, 'D', CAST(:w AS jsonb))"
            ),
            {"t": tenant, "w": widgets},
        )
        await conn.execute(
            text(
                """INSERT INTO kpi_targets (tenant_id, id, kpi, day_from, day_until, channel, target, at_risk_within)
                   VALUES (:t, gen_random_uuid(), 'gmv', '2026-11-01', '2026-11-30', 'shopee', 1, 0.1),
                          (:t, gen_random_uuid(), 'gmv', '2026-11-01', '2026-11-30', NULL, 2, 0.1)"""
            ),
            {"t": tenant},
        )
    await migrate.upgrade(scratch)
    async with scratch.connect() as conn:
        after = await conn.scalar(text("SELECT widgets FROM dashboards"))
        targets = (
            await conn.execute(text("SELECT dimension, dimension_value FROM kpi_targets ORDER BY target"))
        ).all()
    assert [w["breakdown"] for w in after] == ["channel", None]
    assert [tuple(t) for t in targets] == [("channel", "shopee"), (None, None)]
    await migrate.downgrade(scratch, "0018")
    async with scratch.connect() as conn:
        before = await conn.scalar(text("SELECT widgets FROM dashboards"))
        channels = (await conn.scalars(text("SELECT channel FROM kpi_targets ORDER BY target"))).all()
    assert [w["breakdown"] for w in before] == [True, False] and channels == ["shopee", None]
