"""KPIs in GraphQL: the catalogue, dashboards and what their widgets show, spend and targets."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal

import strawberry
from strawberry.scalars import JSON

from brandloop.auth.permissions import Permission
from brandloop.errors import InvalidInput
from brandloop.graphql.context import Info
from brandloop.graphql.errors import UserError, user_errors
from brandloop.graphql.permissions import Needs
from brandloop.graphql.relay import BadInput, global_id, pk_of
from brandloop.kpis import service
from brandloop.kpis.catalogue import KPIS, Direction, Kpi, Unit
from brandloop.kpis.measures import Dimension
from brandloop.kpis.models import Dashboard, Target

UnitEnum = strawberry.enum(Unit, name="KpiUnit")
DirectionEnum = strawberry.enum(Direction, name="KpiDirection")
StatusEnum = strawberry.enum(service.Status, name="KpiStatus")
DimensionEnum = strawberry.enum(Dimension, name="KpiDimension")


@strawberry.type(name="KpiDefinition")
class DefinitionType:
    key: str
    name: str
    unit: UnitEnum  # type: ignore[valid-type]
    direction: DirectionEnum  # type: ignore[valid-type]
    version: int = strawberry.field(description="Changes whenever the formula does.")
    formula: str
    grains: list[str] = strawberry.field(
        description="The series it has; none: it compares whole periods only (retention, churn, CLV)."
    )
    dimensions: list[DimensionEnum] = strawberry.field(  # type: ignore[valid-type]
        description="What it breaks down by."
    )
    benchmark: str | None = strawberry.field(description="The reference band to read it against.")

    @classmethod
    def of(cls, kpi: Kpi) -> DefinitionType:
        return cls(
            key=kpi.key, name=kpi.name, unit=kpi.unit, direction=kpi.direction, version=kpi.version,
            formula=kpi.formula, grains=list(kpi.grains), dimensions=list(kpi.dimensions), benchmark=kpi.benchmark,
        )  # fmt: skip


@strawberry.type(name="KpiPoint")
class PointType:
    start: date
    value: float | None


@strawberry.type(name="KpiTarget")
class TargetType:
    value: float
    day_from: date
    day_until: date
    at_risk_within: float
    dimension: DimensionEnum | None  # type: ignore[valid-type]
    dimension_value: str | None = strawberry.field(description="Null: the KPI overall.")

    @classmethod
    def of(cls, row: Target) -> TargetType:
        return cls(value=float(row.target), day_from=row.day_from, day_until=row.day_until,
                   at_risk_within=float(row.at_risk_within),
                   dimension=Dimension(row.dimension) if row.dimension else None,
                   dimension_value=row.dimension_value)  # fmt: skip


@strawberry.type(name="KpiBreakdownRow")
class BreakdownType:
    key: str = strawberry.field(description="The dimension's value: a channel, a region, a segment, a tier.")
    value: float | None
    target: TargetType | None
    status: StatusEnum  # type: ignore[valid-type]

    @classmethod
    def of(cls, row: service.BreakdownRow) -> BreakdownType:
        return cls(key=row.key, value=_number(row.value), target=TargetType.of(row.target) if row.target else None,
                   status=row.status)  # fmt: skip


def _number(value: Decimal | None) -> float | None:
    return None if value is None else float(round(value, 6))


@strawberry.type(name="DashboardWidget")
class WidgetType:
    section: str = strawberry.field(description="brand, channel, customer or digital.")
    kpi: DefinitionType = strawberry.field(description="Which definition (and version) it computed.")
    grain: str
    day_from: date
    day_until: date
    value: float | None = strawberry.field(description="Money in major units of the reporting currency.")
    margin_of_error: float | None = strawberry.field(description="NPS: its 95% margin, in points.")
    comparison: str = strawberry.field(description="previous_period, last_year or target.")
    comparison_value: float | None
    change: float | None
    series: list[PointType]
    target: TargetType | None
    status: StatusEnum  # type: ignore[valid-type]
    breakdown_by: DimensionEnum | None  # type: ignore[valid-type]
    breakdown: list[BreakdownType] = strawberry.field(description="By `breakdownBy`, largest first.")

    @classmethod
    def of(cls, found: service.WidgetValue) -> WidgetType:
        return cls(
            section=found.widget.section, kpi=DefinitionType.of(found.kpi), grain=found.widget.grain,
            day_from=found.since, day_until=found.until, value=_number(found.value), margin_of_error=found.margin,
            comparison=found.widget.comparison, comparison_value=_number(found.comparison_value),
            change=_number(found.change), series=[PointType(start=s, value=_number(v)) for s, v in found.series],
            target=TargetType.of(found.target) if found.target else None, status=found.status,
            breakdown_by=found.widget.breakdown, breakdown=[BreakdownType.of(row) for row in found.breakdown],
        )  # fmt: skip


@strawberry.type(name="Dashboard")
class DashboardType:
    id: strawberry.ID | None = strawberry.field(description="Null for the default dashboard, not saved.")
    name: str
    spec: strawberry.Private[list[service.Widget]]

    @strawberry.field(description="Each widget's value, comparison, series, target and status.")
    async def widgets(self, info: Info) -> list[WidgetType]:
        found = await info.context.run(service.evaluate, self.spec)
        return [WidgetType.of(w) for w in found]

    @classmethod
    def of(cls, row: Dashboard) -> DashboardType:
        return cls(id=strawberry.ID(global_id("Dashboard", row.id)), name=row.name,
                   spec=[service.Widget.model_validate(w) for w in row.widgets])  # fmt: skip


DEFAULT = DashboardType(id=None, name="Brand, channel, customer, digital", spec=service.DEFAULT_WIDGETS)


@strawberry.type
class KpiQueries:
    @strawberry.field(description="Every KPI Brandloop computes.", extensions=[Needs(Permission.KPIS_READ)])
    def kpi_definitions(self) -> list[DefinitionType]:
        return [DefinitionType.of(k) for k in KPIS.values()]

    @strawberry.field(
        description="The saved dashboards, oldest first.", extensions=[Needs(Permission.KPIS_READ)]
    )
    async def dashboards(self, info: Info) -> list[DashboardType]:
        return [DashboardType.of(d) for d in await info.context.run(service.dashboards)]

    @strawberry.field(
        description="Widgets at risk or off track whose status you have not seen yet (markKpiAlertsSeen).",
        extensions=[Needs(Permission.KPIS_READ)],
    )
    async def kpi_alerts(self, info: Info, dashboard_id: strawberry.ID | None = None) -> list[WidgetType]:
        ctx = info.context
        try:
            widgets = await _widgets_of(info, dashboard_id)
        except InvalidInput as error:
            raise BadInput(error.problems[0].message) from None
        return [WidgetType.of(w) for w in await ctx.run(service.alerts, widgets, ctx.principal.subject)]

    @strawberry.field(
        description="A saved dashboard, or without an id the default four-part one.",
        extensions=[Needs(Permission.KPIS_READ)],
    )
    async def dashboard(self, info: Info, id: strawberry.ID | None = None) -> DashboardType | None:
        if id is None:
            return DEFAULT
        try:
            return DashboardType.of(await info.context.run(service.get_dashboard, pk_of(id, "Dashboard")))
        except InvalidInput:
            return None


async def _widgets_of(info: Info, dashboard_id: strawberry.ID | None) -> list[service.Widget]:
    if dashboard_id is None:
        return service.DEFAULT_WIDGETS
    row = await info.context.run(service.get_dashboard, pk_of(dashboard_id, "Dashboard"))
    return [service.Widget.model_validate(w) for w in row.widgets]


@strawberry.input
class MarkKpiAlertsSeenInput:
    dashboard_id: strawberry.ID | None = strawberry.field(
        default=None, description="Null: the default dashboard."
    )


@strawberry.type
class MarkKpiAlertsSeenPayload:
    seen: int
    user_errors: list[UserError]


@strawberry.input
class SpendEntryInput:
    channel: str
    day_from: date
    day_until: date
    amount: int = strawberry.field(description="Minor units of the reporting currency.")
    note: str | None = None


@strawberry.input
class RecordMarketingSpendInput:
    entries: list[SpendEntryInput]


@strawberry.type
class RecordMarketingSpendPayload:
    recorded: int
    user_errors: list[UserError]


@strawberry.input
class KpiTargetInput:
    kpi: str
    day_from: date
    day_until: date
    target: float
    at_risk_within: float = strawberry.field(default=0.1, description="0.1: within 10% on the wrong side.")
    dimension: DimensionEnum | None = strawberry.field(  # type: ignore[valid-type]
        default=None, description="With dimensionValue: a target for one channel, region, segment or tier."
    )
    dimension_value: str | None = None


@strawberry.type
class KpiTargetPayload:
    target: TargetType | None
    user_errors: list[UserError]


@strawberry.input
class SaveDashboardInput:
    id: strawberry.ID | None = strawberry.field(default=None, description="Leave out to make a new one.")
    name: str
    widgets: JSON = strawberry.field(
        description="[{section, kpi, grain, days, breakdown, comparison}], as `dashboard` reads them; "
        "breakdown: one of the KPI's dimensions (channel, region, segment, tier) or null."
    )


@strawberry.type
class DashboardPayload:
    dashboard: DashboardType | None
    user_errors: list[UserError]


@strawberry.type
class KpiMutations:
    @strawberry.mutation(extensions=[Needs(Permission.KPIS_WRITE)])
    async def record_marketing_spend(
        self, info: Info, input: RecordMarketingSpendInput
    ) -> RecordMarketingSpendPayload:
        ctx = info.context
        given = [
            service.SpendInput(e.channel, e.day_from, e.day_until, e.amount, e.note) for e in input.entries
        ]
        try:
            recorded = await ctx.mutate(service.record_spend, given, actor=ctx.principal.subject)
        except InvalidInput as error:
            return RecordMarketingSpendPayload(recorded=0, user_errors=user_errors(error))
        return RecordMarketingSpendPayload(recorded=recorded, user_errors=[])

    @strawberry.mutation(extensions=[Needs(Permission.KPIS_WRITE)])
    async def set_kpi_target(self, info: Info, input: KpiTargetInput) -> KpiTargetPayload:
        ctx = info.context
        try:
            row = await ctx.mutate(
                service.set_target, kpi=input.kpi, day_from=input.day_from, day_until=input.day_until,
                dimension=input.dimension, dimension_value=input.dimension_value, target=Decimal(str(input.target)),
                at_risk_within=Decimal(str(input.at_risk_within)), actor=ctx.principal.subject,
            )  # fmt: skip
        except InvalidInput as error:
            return KpiTargetPayload(target=None, user_errors=user_errors(error))
        return KpiTargetPayload(target=TargetType.of(row), user_errors=[])

    @strawberry.mutation(extensions=[Needs(Permission.KPIS_WRITE)])
    async def save_dashboard(self, info: Info, input: SaveDashboardInput) -> DashboardPayload:
        ctx = info.context
        widgets = input.widgets if isinstance(input.widgets, list) else []
        target: uuid.UUID | None = pk_of(input.id, "Dashboard") if input.id else None
        try:
            row = await ctx.mutate(
                service.save_dashboard, target, name=input.name, widgets=widgets, actor=ctx.principal.subject
            )
        except InvalidInput as error:
            return DashboardPayload(dashboard=None, user_errors=user_errors(error))
        return DashboardPayload(dashboard=DashboardType.of(row), user_errors=[])

    @strawberry.mutation(
        description="Remember the dashboard's statuses as seen by you: kpiAlerts empties until one changes.",
        extensions=[Needs(Permission.KPIS_READ)],
    )
    async def mark_kpi_alerts_seen(
        self, info: Info, input: MarkKpiAlertsSeenInput
    ) -> MarkKpiAlertsSeenPayload:
        ctx = info.context
        try:
            widgets = await _widgets_of(info, input.dashboard_id)
            seen = await ctx.mutate(service.mark_seen, widgets, ctx.principal.subject)
        except InvalidInput as error:
            return MarkKpiAlertsSeenPayload(seen=0, user_errors=user_errors(error))
        return MarkKpiAlertsSeenPayload(seen=seen, user_errors=[])
