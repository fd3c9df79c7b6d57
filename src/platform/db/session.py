"""Transactions: every unit of tenant work runs as the application role with the tenant set.

Row-level security does the isolating. The role and the tenant are both set with transaction
scope, so a pooled connection (or PgBouncer in transaction mode) carries nothing to the next user.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypeVar

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from brandloop.errors import InvalidInput, Problem

APP_ROLE = "brandloop_app"
"""The role queries run as: no BYPASSRLS, owns nothing. Created by the first migration."""

_ENTER_TENANT = text(
    "SELECT set_config('role', :role, true), set_config('app.tenant_id', :tenant_id, true),"
    " set_config('app.api_key_prefix', '', true)"
)


def new_session(engine: AsyncEngine) -> AsyncSession:
    return AsyncSession(engine, expire_on_commit=False, autoflush=False)


async def driver(session: AsyncSession) -> asyncpg.Connection:
    """The asyncpg connection under the session's transaction, for statements that run on every
    request: the driver directly costs a fraction of SQLAlchemy's per-statement Python.

    Only inside a transaction SQLAlchemy has begun (enter_* go through SQLAlchemy for that
    reason): outside one, the role and tenant set for the transaction would not hold."""
    connection = await session.connection()
    raw: asyncpg.Connection = (await connection.get_raw_connection()).driver_connection
    if not raw.is_in_transaction():
        raise RuntimeError("driver() needs a transaction that has begun (enter the tenant first)")
    return raw


async def enter_tenant(session: AsyncSession, tenant_id: uuid.UUID) -> None:
    """Make the rest of the session's transaction run as the app role, inside one tenant."""
    await session.execute(_ENTER_TENANT, {"role": APP_ROLE, "tenant_id": str(tenant_id)})
    session.info["tenant_id"] = tenant_id


def engine_of(session: AsyncSession) -> AsyncEngine:
    """The engine a job's session runs on, for work that must commit on its own."""
    assert isinstance(session.bind, AsyncEngine)
    return session.bind


def entered_tenant(session: AsyncSession, tenant_id: uuid.UUID) -> None:
    """Record the tenant a database function entered the transaction for (as enter_tenant does)."""
    session.info["tenant_id"] = tenant_id


def current_tenant(session: AsyncSession) -> uuid.UUID:
    """The tenant the session's transaction was entered for."""
    return session.info["tenant_id"]


async def take_turns(session: AsyncSession, name: str) -> None:
    """Hold the tenant's lock called `name` until the transaction ends: another transaction of
    the tenant asking for it waits its turn."""
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
        {"key": f"{name}:{current_tenant(session)}"},
    )


T = TypeVar("T")


async def get_own(
    session: AsyncSession,
    model: type[T],
    row_id: uuid.UUID,
    *,
    what: str,
    field: str = "id",
    lock: bool = False,
) -> T:
    """The tenant's row of `model` with this id (locked for update if asked); InvalidInput
    NOT_FOUND on `field` when the tenant has none, another tenant's included."""
    found = await session.get(model, (current_tenant(session), row_id), with_for_update=lock)
    if found is None:
        raise InvalidInput(Problem(field, "NOT_FOUND", f"No {what} of yours has this id."))
    return found


@asynccontextmanager
async def tenant_transaction(engine: AsyncEngine, tenant_id: uuid.UUID) -> AsyncIterator[AsyncSession]:
    """One transaction for one tenant; commits on success, rolls back on error."""
    async with new_session(engine) as session, session.begin():
        await enter_tenant(session, tenant_id)
        yield session


@asynccontextmanager
async def platform_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """A transaction as the configured (owner) role, for platform admin operations only."""
    async with new_session(engine) as session, session.begin():
        yield session
