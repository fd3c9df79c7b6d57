"""Helpers for the KPI tests."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from brandloop.db.session import tenant_transaction
from brandloop.kpis import rollup
from support import Tenant


async def settle(engine: AsyncEngine, tenant: Tenant) -> None:
    """Run the roll-up job once for the tenant, as the worker would."""
    async with tenant_transaction(engine, tenant.id) as session:
        await rollup.catch_up(session)
