"""KPIs: marketing spend, targets and their status, dashboards and what their widgets show
(docs/kpis.md). Every value is read from the daily roll-ups (rollup.py, measures.py)."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Literal
from zoneinfo import ZoneInfo

from dateutil.relativedelta import relativedelta
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from brandloop.audit import service as audit
from brandloop.db.base import uuid7
from brandloop.db.session import current_tenant, get_own
from brandloop.errors import InvalidInput, Problem
from brandloop.kpis.catalogue import KPIS, Direction, Kpi
from brandloop.kpis.measures import Dimension, Measures, measure
from brandloop.kpis.models import AlertSeen, Dashboard, Spend, Target
from brandloop.orders.service import CHANNEL
from brandloop.tenancy.service import settings_of


class Status(enum.StrEnum):
    ON_TRACK = "on_track"
    AT_RISK = "at_risk"
    OFF_TRACK = "off_track"
    NO_TARGET = "no_target"


def status(value: Decimal | None, target: Target | None, direction: Direction) -> Status:
    """On track on the right side of the target (or on it); at risk up to `at_risk_within` of
    it on the wrong side; off track beyond."""
    if target is None or value is None:
        return Status.NO_TARGET
    goal, slack = Decimal(target.target), Decimal(target.at_risk_within)
    if direction == Direction.HIGHER_IS_BETTER:
        if value >= goal:
            return Status.ON_TRACK
        return Status.AT_RISK if value >= goal - abs(goal) * slack else Status.OFF_TRACK
    if value <= goal:
        return Status.ON_TRACK
    return Status.AT_RISK if value <= goal + abs(goal) * slack else Status.OFF_TRACK


def _kpi(key: str, field_name: str = "kpi") -> Kpi:
    found = KPIS.get(key)
    if found is None:
        raise InvalidInput(Problem(field_name, "UNKNOWN_KPI", f"No KPI {key!r}; see kpiDefinitions."))
    return found


# -- marketing spend -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SpendInput:
    channel: str
    day_from: date
    day_until: date
    amount: int
    """Minor units of the reporting currency."""
    note: str | None = None


async def record_spend(session: AsyncSession, given: Sequence[SpendInput], *, actor: str) -> int:
    problems: list[Problem] = []
    if not 0 < len(given) <= 1000:
        raise InvalidInput(Problem("entries", "INVALID_COUNT", "Send 1 to 1,000 entries at a time."))
    rows = []
    for n, s in enumerate(given):
        where = f"entries.{n}"
        if not CHANNEL.match(s.channel):
            problems.append(Problem(f"{where}.channel", "INVALID_CHANNEL", "A channel key: a-z, 0-9, _."))
        if not (s.day_from <= s.day_until and (s.day_until - s.day_from).days <= 366):
            problems.append(
                Problem(f"{where}.dayUntil", "INVALID_PERIOD", "A period of 1 to 367 days, in order.")
            )
        if not 0 <= s.amount <= 10**13:
            problems.append(
                Problem(f"{where}.amount", "INVALID_AMOUNT", "Minor units of the reporting currency.")
            )
        if s.note is not None and len(s.note) > 500:
            problems.append(Problem(f"{where}.note", "INVALID_LENGTH", "At most 500 characters."))
        rows.append(
            Spend(
                tenant_id=current_tenant(session), id=uuid7(), channel=s.channel, day_from=s.day_from,
                day_until=s.day_until, amount=s.amount, note=s.note,
            )
        )  # fmt: skip
    if problems:
        raise InvalidInput(*problems)
    session.add_all(rows)
    await session.flush()
    await audit.record(session, actor=actor, action="marketing_spend.record", target_type="MarketingSpend",
                       after={"entries": len(rows), "amount": sum(r.amount for r in rows)})  # fmt: skip
    return len(rows)


# -- targets ---------------------------------------------------------------------------------------


async def set_target(
    session: AsyncSession,
    *,
    kpi: str,
    day_from: date,
    day_until: date,
    dimension: Dimension | None = None,
    dimension_value: str | None = None,
    target: Decimal,
    at_risk_within: Decimal,
    actor: str,
) -> Target:
    """A target for a KPI over a period, overall or for one value of a dimension (a channel, a
    region, ...); a later one for the same KPI, value and period replaces it in reads."""
    definition = _kpi(kpi)
    problems: list[Problem] = []
    if day_until < day_from:
        problems.append(Problem("dayUntil", "INVALID_PERIOD", "A period ends after it starts."))
    if dimension is not None and dimension not in definition.dimensions:
        problems.append(
            Problem(
                "dimension", "INVALID_DIMENSION", f"{definition.name} does not break down by {dimension}."
            )
        )
    if (dimension is None) != (dimension_value is None):
        problems.append(
            Problem("dimensionValue", "INCOMPLETE", "Give a dimension and its value, or neither.")
        )
    elif dimension_value is not None and not (
        CHANNEL.match(dimension_value) if dimension is Dimension.CHANNEL else 0 < len(dimension_value) <= 64
    ):
        problems.append(
            Problem("dimensionValue", "INVALID_VALUE", "A channel key (a-z, 0-9, _) or 1 to 64 characters.")
        )
    if not Decimal(0) <= at_risk_within <= Decimal(1):
        problems.append(Problem("atRiskWithin", "OUT_OF_RANGE", "A share from 0 to 1 (0.1: within 10%)."))
    if not target.is_finite() or abs(target) >= Decimal(10) ** 14:
        problems.append(Problem("target", "INVALID_NUMBER", "A finite number."))
    if problems:
        raise InvalidInput(*problems)
    row = Target(
        tenant_id=current_tenant(session), id=uuid7(), kpi=kpi, day_from=day_from, day_until=day_until,
        dimension=dimension, dimension_value=dimension_value, target=target, at_risk_within=at_risk_within,
    )  # fmt: skip
    session.add(row)
    await session.flush()
    await audit.record(
        session, actor=actor, action="kpi_target.set", target_type="KpiTarget", target_id=row.id
    )
    return row


async def targets_of(session: AsyncSession, kpis: Sequence[str]) -> list[Target]:
    """The tenant's targets of these KPIs, newest first."""
    return list(await session.scalars(select(Target).where(Target.kpi.in_(kpis)).order_by(Target.id.desc())))


def covering(
    targets: Sequence[Target],
    kpi: str,
    since: date,
    until: date,
    dimension: Dimension | None = None,
    value: str | None = None,
) -> Target | None:
    """The newest target of the KPI (overall, or for the dimension's value) covering [since, until]."""
    return next(
        (
            t
            for t in targets
            if (t.kpi, t.dimension, t.dimension_value) == (kpi, dimension, value)
            and t.day_from <= since
            and t.day_until >= until
        ),
        None,
    )


# -- dashboards ------------------------------------------------------------------------------------

Section = Literal["brand", "channel", "customer", "digital"]
Grain = Literal["day", "week", "month", "quarter"]
Comparison = Literal["previous_period", "last_year", "target"]


class Widget(BaseModel):
    """One KPI on a dashboard: over the last `days` days, by `grain`, compared with something."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    section: Section
    kpi: str
    grain: Grain = "day"
    days: int = Field(default=30, ge=1, le=730)
    breakdown: Dimension | None = None
    """One of the KPI's dimensions."""
    comparison: Comparison = "previous_period"


DEFAULT_WIDGETS = [
    Widget.model_validate({"section": section, "kpi": kpi, "breakdown": breakdown})
    for section, kpi, breakdown in [
        ("brand", "gmv", "channel"), ("brand", "orders", None), ("brand", "aov", None), ("brand", "nps", None),
        ("channel", "channel_gmv_share", "channel"), ("channel", "private_domain_gmv_share", None),
        ("channel", "roi", "channel"), ("channel", "open_conflicts", None),
        ("customer", "new_customers", None), ("customer", "active_customers", None),
        ("customer", "repeat_purchase_rate", None), ("customer", "cac", "channel"),
        ("digital", "points_issued", None), ("digital", "redemption_rate", None),
        ("digital", "points_liability", None), ("digital", "survey_responses", "channel"),
    ]
]  # fmt: skip
"""The four-part model (../shared/DOMAIN.md): brand, channel, customer, digital."""


def _widgets(given: Sequence[object]) -> list[Widget]:
    problems: list[Problem] = []
    widgets = []
    if not 0 < len(given) <= 40:
        raise InvalidInput(Problem("widgets", "INVALID_COUNT", "A dashboard has 1 to 40 widgets."))
    for n, raw in enumerate(given):
        try:
            widget = Widget.model_validate(raw)
        except ValidationError as error:
            problems += [
                Problem(f"widgets.{n}.{'.'.join(map(str, e['loc']))}", "INVALID_WIDGET", e["msg"])
                for e in error.errors()
            ]
            continue
        kpi = KPIS.get(widget.kpi)
        if kpi is None:
            problems.append(Problem(f"widgets.{n}.kpi", "UNKNOWN_KPI", f"No KPI {widget.kpi!r}."))
        elif widget.breakdown is not None and widget.breakdown not in kpi.dimensions:
            problems.append(
                Problem(
                    f"widgets.{n}.breakdown", "INVALID_BREAKDOWN",
                    f"{kpi.name} breaks down by {', '.join(kpi.dimensions) or 'nothing'}.",
                )
            )  # fmt: skip
        widgets.append(widget)
    if problems:
        raise InvalidInput(*problems)
    return widgets


async def save_dashboard(
    session: AsyncSession, dashboard_id: uuid.UUID | None, *, name: str, widgets: Sequence[object], actor: str
) -> Dashboard:
    if not 0 < len(name.strip()) <= 100:
        raise InvalidInput(Problem("name", "INVALID_LENGTH", "A name has 1 to 100 characters."))
    valid = [w.model_dump(mode="json") for w in _widgets(widgets)]
    if dashboard_id is None:
        row = Dashboard(tenant_id=current_tenant(session), id=uuid7(), name=name.strip(), widgets=valid)
        session.add(row)
    else:
        row = await get_dashboard(session, dashboard_id)
        row.name, row.widgets, row.updated_at = name.strip(), valid, datetime.now(ZoneInfo("UTC"))
    await session.flush()
    await audit.record(
        session, actor=actor, action="dashboard.save", target_type="Dashboard", target_id=row.id
    )
    return row


async def get_dashboard(session: AsyncSession, dashboard_id: uuid.UUID) -> Dashboard:
    return await get_own(session, Dashboard, dashboard_id, what="dashboard")


async def dashboards(session: AsyncSession) -> list[Dashboard]:
    return list(await session.scalars(select(Dashboard).order_by(Dashboard.id)))


@dataclass(frozen=True, slots=True)
class BreakdownRow:
    key: str
    value: Decimal | None
    target: Target | None
    status: Status


@dataclass(slots=True)
class WidgetValue:
    widget: Widget
    kpi: Kpi
    since: date
    until: date
    value: Decimal | None
    margin: float | None
    """For NPS: its 95% margin of error, in points."""
    comparison_value: Decimal | None
    series: list[tuple[date, Decimal | None]]
    target: Target | None
    status: Status
    breakdown: list[BreakdownRow] = field(default_factory=list)

    @property
    def change(self) -> Decimal | None:
        if self.value is None or self.comparison_value is None:
            return None
        return self.value - self.comparison_value


class _Measured:
    """The measures of one dashboard read, each period asked for once however many widgets ask;
    retention (a scan of the period before too) only when one of the widgets needs it."""

    def __init__(self, session: AsyncSession, widgets: Sequence[Widget]) -> None:
        self.session, self.found = session, {}  # type: ignore[var-annotated]
        self.retention = any(not KPIS[w.kpi].grains for w in widgets)

    async def __call__(
        self, since: date, until: date, grain: str | None, by: Dimension | None = None
    ) -> dict[tuple[date, str | None], Measures]:
        key = (since, until, grain, by)
        if key not in self.found:
            self.found[key] = await measure(
                self.session, since, until, grain=grain, by=by, retention=self.retention
            )
        return self.found[key]  # type: ignore[no-any-return]


async def evaluate(
    session: AsyncSession, widgets: Sequence[Widget], today: date | None = None
) -> list[WidgetValue]:
    """What each widget shows: the value over its last `days` days up to today (the tenant's
    time zone), the comparison, the series, the target and status, the breakdown."""
    settings = await settings_of(session)
    today = today or datetime.now(ZoneInfo(settings.timezone)).date()
    measured = _Measured(session, widgets)
    targets = await targets_of(session, sorted({w.kpi for w in widgets}))  # one read for every widget
    values = []
    for widget in widgets:
        kpi = KPIS[widget.kpi]
        until, since = today, today - timedelta(days=widget.days - 1)
        whole = (await measured(since, until, None)).get((since, None), Measures())
        value = kpi.compute(whole)
        target = covering(targets, kpi.key, since, until)
        if widget.comparison == "previous_period":
            before = (since - timedelta(days=widget.days), since - timedelta(days=1))
            compared = kpi.compute((await measured(*before, None)).get((before[0], None), Measures()))
        elif widget.comparison == "last_year":
            before = (since - relativedelta(years=1), until - relativedelta(years=1))
            compared = kpi.compute((await measured(*before, None)).get((before[0], None), Measures()))
        else:
            compared = Decimal(target.target) if target is not None else None
        series = []
        if widget.grain in kpi.grains:
            found = await measured(since, until, widget.grain)
            series = [
                (start, kpi.compute(m)) for (start, _), m in sorted(found.items(), key=lambda kv: kv[0][0])
            ]
        breakdown = []
        if (by := widget.breakdown) in kpi.dimensions:
            rows = [
                (key, kpi.compute(m), covering(targets, kpi.key, since, until, by, key))
                for (_, key), m in (await measured(since, until, None, by)).items()
                if key is not None
            ]
            breakdown = sorted(
                (BreakdownRow(key, v, t, status(v, t, kpi.direction)) for key, v, t in rows),
                key=lambda row: (-(row.value or Decimal(0)), row.key),
            )
        values.append(
            WidgetValue(
                widget=widget, kpi=kpi, since=since, until=until, value=value,
                margin=whole.survey.margin_of_error if kpi.key == "nps" else None, comparison_value=compared, series=series,
                target=target, status=status(value, target, kpi.direction), breakdown=breakdown,
            )
        )  # fmt: skip
    return values


# -- alerts ----------------------------------------------------------------------------------------

ALERTING = {Status.AT_RISK, Status.OFF_TRACK}


def widget_key(widget: Widget) -> str:
    return f"{widget.kpi}:{widget.grain}:{widget.days}:{widget.comparison}:{widget.breakdown or ''}"


async def alerts(session: AsyncSession, widgets: Sequence[Widget], viewer: str) -> list[WidgetValue]:
    """The widgets at risk or off track whose status the viewer has not seen yet."""
    seen = {
        row.widget: row.status
        for row in await session.scalars(select(AlertSeen).where(AlertSeen.viewer == viewer))
    }
    return [
        v
        for v in await evaluate(session, widgets)
        if v.status in ALERTING and seen.get(widget_key(v.widget)) != v.status
    ]


async def mark_seen(session: AsyncSession, widgets: Sequence[Widget], viewer: str) -> int:
    """Remember every widget's current status for the viewer: the alert list empties until one changes."""
    values = await evaluate(session, widgets)
    rows = [
        {"tenant_id": current_tenant(session), "viewer": viewer, "widget": widget_key(v.widget), "status": v.status.value,
         "seen_at": datetime.now(ZoneInfo("UTC"))}
        for v in values
    ]  # fmt: skip
    insert = pg_insert(AlertSeen)
    await session.execute(
        insert.on_conflict_do_update(
            index_elements=[AlertSeen.tenant_id, AlertSeen.viewer, AlertSeen.widget],
            set_={"status": insert.excluded.status, "seen_at": insert.excluded.seen_at},
        ),
        rows,
    )
    return len(rows)
