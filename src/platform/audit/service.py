"""Recording and reading the audit log.

Entries hold no personal data: for customer changes they name the fields that changed, not
their values, so that erasing a person leaves nothing of them here.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from brandloop.audit.models import AuditEntry
from brandloop.db.base import keyset_page
from brandloop.db.session import current_tenant


async def record(
    session: AsyncSession,
    *,
    actor: str,
    action: str,
    target_type: str,
    target_id: uuid.UUID | str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    session.add(
        AuditEntry(
            tenant_id=current_tenant(session),
            actor=actor,
            action=action,
            target_type=target_type,
            target_id=str(target_id) if target_id is not None else None,
            before=before,
            after=after,
        )
    )
    await session.flush()


@dataclass(frozen=True, slots=True)
class AuditFilter:
    action: str | None = None
    target_id: str | None = None


def _filtered(query: Select[Any], flt: AuditFilter) -> Select[Any]:
    if flt.action:
        query = query.where(AuditEntry.action == flt.action)
    if flt.target_id:
        query = query.where(AuditEntry.target_id == flt.target_id)
    return query


async def list_entries(
    session: AsyncSession, flt: AuditFilter, *, first: int, after: uuid.UUID | None = None
) -> list[AuditEntry]:
    return list(
        (
            await session.scalars(keyset_page(_filtered(select(AuditEntry), flt), AuditEntry, first, after))
        ).all()
    )


async def count_entries(session: AsyncSession, flt: AuditFilter) -> int:
    return await session.scalar(_filtered(select(func.count()).select_from(AuditEntry), flt)) or 0
