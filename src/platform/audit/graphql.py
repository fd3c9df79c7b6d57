"""The audit log in GraphQL, for admins."""

from __future__ import annotations

from datetime import datetime

import strawberry

from brandloop.audit import service
from brandloop.audit.models import AuditEntry
from brandloop.audit.service import AuditFilter
from brandloop.auth.permissions import Permission
from brandloop.graphql.context import Info
from brandloop.graphql.permissions import Needs
from brandloop.graphql.relay import Connection, global_id, paginate


@strawberry.type(name="AuditEntry", description="Who did what to which object, when.")
class AuditEntryType:
    id: strawberry.ID
    actor: str = strawberry.field(
        description="`api_key:<prefix>`, a JWT subject, `cli:<user>` or `system:...`."
    )
    action: str = strawberry.field(description="e.g. customer.merge, api_key.create, settings.update.")
    target_type: str
    target_id: str | None
    before: strawberry.scalars.JSON | None
    after: strawberry.scalars.JSON | None
    created_at: datetime

    @classmethod
    def of(cls, row: AuditEntry) -> AuditEntryType:
        return cls(
            id=global_id("AuditEntry", row.id),
            actor=row.actor,
            action=row.action,
            target_type=row.target_type,
            target_id=row.target_id,
            before=row.before,
            after=row.after,
            created_at=row.created_at,
        )


@strawberry.input
class AuditFilterInput:
    action: str | None = None
    target_id: str | None = strawberry.field(default=None, description="The target's id as stored (a UUID).")


@strawberry.type
class AuditQueries:
    @strawberry.field(description="The audit log, oldest first.", extensions=[Needs(Permission.AUDIT_READ)])
    async def audit_log(
        self,
        info: Info,
        first: int = 20,
        after: str | None = None,
        filter: AuditFilterInput | None = None,
    ) -> Connection[AuditEntryType]:
        ctx = info.context
        flt = AuditFilter(action=filter.action, target_id=filter.target_id) if filter else AuditFilter()
        return await paginate(
            first,
            after,
            max_page_size=ctx.settings.max_page_size,
            fetch=lambda limit, cursor: ctx.run(service.list_entries, flt, first=limit, after=cursor),
            count=lambda: ctx.run(service.count_entries, flt),
            node=AuditEntryType.of,
        )
