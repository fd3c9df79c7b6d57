"""`viewer`: who is calling, for which tenant, with which role."""

from __future__ import annotations

import strawberry

from brandloop.auth.graphql import RoleEnum
from brandloop.auth.permissions import Permission
from brandloop.graphql.context import Info
from brandloop.graphql.permissions import Needs
from brandloop.graphql.relay import global_id
from brandloop.tenancy import service


@strawberry.type(name="Tenant", description="A brand using Brandloop.")
class TenantType:
    id: strawberry.ID
    slug: str
    name: str


@strawberry.type
class Viewer:
    tenant: TenantType
    role: RoleEnum  # type: ignore[valid-type]


@strawberry.type
class TenancyQueries:
    @strawberry.field(description="The caller and its tenant.", extensions=[Needs(Permission.TENANT_READ)])
    async def viewer(self, info: Info) -> Viewer:
        ctx = info.context
        tenant = await ctx.run(service.active_tenant)
        return Viewer(
            tenant=TenantType(id=global_id("Tenant", tenant.id), slug=tenant.slug, name=tenant.name),
            role=ctx.principal.role,
        )
