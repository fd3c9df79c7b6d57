"""Tenants. Creating and listing them are platform admin operations (owner role, no RLS)."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from brandloop.db.session import current_tenant
from brandloop.errors import InvalidInput, Problem, Unauthenticated
from brandloop.tenancy.models import Tenant

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
MAX_NAME_LENGTH = 200


async def create_tenant(session: AsyncSession, *, slug: str, name: str) -> Tenant:
    if not SLUG.match(slug):
        raise InvalidInput(
            Problem(
                "slug",
                "INVALID_SLUG",
                "Use 2-63 lower-case letters, digits or '-', starting with a letter or digit.",
            )
        )
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        raise InvalidInput(
            Problem("name", "INVALID_LENGTH", f"Use a name of 1 to {MAX_NAME_LENGTH} characters.")
        )
    tenant = Tenant(slug=slug, name=name, status="active")
    try:
        async with session.begin_nested():
            session.add(tenant)
    except IntegrityError as error:
        raise InvalidInput(
            Problem("slug", "DUPLICATE", f"A tenant called {slug!r} exists already.")
        ) from error
    await session.refresh(tenant)
    return tenant


async def list_tenants(session: AsyncSession) -> list[Tenant]:
    return list((await session.scalars(select(Tenant).order_by(Tenant.slug))).all())


async def find_tenant(session: AsyncSession, slug: str) -> Tenant | None:
    return await session.scalar(select(Tenant).where(Tenant.slug == slug))


async def active_tenant(session: AsyncSession) -> Tenant:
    """The session's own tenant (the only one RLS lets it see), refusing a suspended one."""
    tenant = await session.get(Tenant, current_tenant(session))
    if tenant is None or tenant.status != "active":
        raise Unauthenticated("This tenant does not exist or is suspended.")
    return tenant
