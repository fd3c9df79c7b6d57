"""`viewer`: who is calling, for which tenant, with which role."""

from __future__ import annotations

import strawberry

from brandloop.auth.graphql import RoleEnum
from brandloop.auth.permissions import Permission
from brandloop.errors import InvalidInput
from brandloop.graphql.context import Info
from brandloop.graphql.errors import UserError, user_errors
from brandloop.graphql.permissions import Needs
from brandloop.graphql.relay import global_id
from brandloop.tenancy import service
from brandloop.tenancy.models import TenantSettings


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

    @strawberry.field(description="The tenant's settings.", extensions=[Needs(Permission.TENANT_READ)])
    async def tenant_settings(self, info: Info) -> TenantSettingsType:
        return TenantSettingsType.of(await info.context.run(service.settings_of))


@strawberry.type(name="TenantSettings")
class TenantSettingsType:
    reporting_currency: str = strawberry.field(description="ISO 4217; reports convert into it.")
    timezone: str = strawberry.field(description="IANA name; it decides what 'a day' is in reports.")
    dormant_after_days: int = strawberry.field(description="No order for this long: dormant.")
    churned_after_days: int = strawberry.field(description="No order for this long: churned.")
    rfm_window_days: int = strawberry.field(description="The window RFM frequency and monetary look at.")
    survey_quiet_days: int = strawberry.field(
        description="A customer invited to or answering any survey is not invited again for this long."
    )
    nps_min_responses: int = strawberry.field(description="NPS groups with fewer responses are flagged.")
    detractor_follow_up_hours: int = strawberry.field(description="When a detractor's follow-up task is due.")
    conflict_auto_resolve_hours: int = strawberry.field(
        description="A price conflict whose listings are back within policy resolves itself after this long."
    )
    escalation_ladder: list[str] = strawberry.field(
        description="The steps a channel partner climbs, one per confirmed conflict."
    )
    gross_margin: float | None = strawberry.field(
        description="The share of revenue kept after the cost of goods (0.35: 35%), for CLV; null: CLV not shown."
    )

    @classmethod
    def of(cls, row: TenantSettings) -> TenantSettingsType:
        return cls(
            reporting_currency=row.reporting_currency,
            timezone=row.timezone,
            dormant_after_days=row.dormant_after_days,
            churned_after_days=row.churned_after_days,
            rfm_window_days=row.rfm_window_days,
            survey_quiet_days=row.survey_quiet_days,
            nps_min_responses=row.nps_min_responses,
            detractor_follow_up_hours=row.detractor_follow_up_hours,
            conflict_auto_resolve_hours=row.conflict_auto_resolve_hours,
            escalation_ladder=list(row.escalation_ladder),
            gross_margin=None if row.gross_margin is None else float(row.gross_margin),
        )


@strawberry.input(description="Settings to change; fields left out keep their value.")
class UpdateTenantSettingsInput:
    reporting_currency: str | None = strawberry.UNSET
    timezone: str | None = strawberry.UNSET
    dormant_after_days: int | None = strawberry.UNSET
    churned_after_days: int | None = strawberry.UNSET
    rfm_window_days: int | None = strawberry.UNSET
    survey_quiet_days: int | None = strawberry.UNSET
    nps_min_responses: int | None = strawberry.UNSET
    detractor_follow_up_hours: int | None = strawberry.UNSET
    conflict_auto_resolve_hours: int | None = strawberry.UNSET
    escalation_ladder: list[str] | None = strawberry.UNSET
    gross_margin: float | None = strawberry.UNSET


@strawberry.type
class TenantSettingsPayload:
    settings: TenantSettingsType | None
    user_errors: list[UserError]


@strawberry.type
class TenancyMutations:
    @strawberry.mutation(extensions=[Needs(Permission.SETTINGS_MANAGE)])
    async def update_tenant_settings(
        self, info: Info, input: UpdateTenantSettingsInput
    ) -> TenantSettingsPayload:
        changes = {
            name: value
            for name, value in vars(input).items()
            if value is not strawberry.UNSET and value is not None
        }
        if "reporting_currency" in changes:
            changes["reporting_currency"] = str(changes["reporting_currency"]).strip().upper()
        try:
            row = await info.context.mutate(
                service.update_settings, changes, actor=info.context.principal.subject
            )
        except InvalidInput as error:
            return TenantSettingsPayload(settings=None, user_errors=user_errors(error))
        return TenantSettingsPayload(settings=TenantSettingsType.of(row), user_errors=[])
