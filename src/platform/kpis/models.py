"""KPIs: the daily roll-ups dashboards read, the spend a tenant records, targets, dashboards."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Date, DateTime, Numeric, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from brandloop.db.base import Base, created_at_column, uuid7

NO_CUSTOMER = uuid.UUID(int=0)
"""Where orders without a known buyer are counted: in orders and GMV, never in customer counts."""
NO_TIER = uuid.UUID(int=0)
"""Where members without a tier are counted."""


class CustomerDay(Base):
    """One customer's paid orders on one channel on one day (the tenant's time zone)."""

    __tablename__ = "kpi_customer_days"

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    channel: Mapped[str] = mapped_column(String(32), primary_key=True)
    region: Mapped[str] = mapped_column(String(6), primary_key=True)
    """Where the orders shipped (ISO 3166-2 subdivision); '' when the platform did not say."""
    customer_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    orders: Mapped[int]
    gmv: Mapped[int] = mapped_column(BigInteger)
    """Totals less refunds, in minor units of the reporting currency."""
    unconverted: Mapped[int]
    """Orders in a currency with no rate that day: counted in orders, not in GMV."""
    first_day: Mapped[bool]
    """The customer's first paid order was on this day."""
    member: Mapped[bool]
    """The customer held a loyalty account by the end of the day."""


class SurveyDay(Base):
    __tablename__ = "kpi_survey_days"

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    channel: Mapped[str] = mapped_column(String(32), primary_key=True)
    promoters: Mapped[int]
    passives: Mapped[int]
    detractors: Mapped[int]
    invited: Mapped[int]
    """Invitations sent that day (not those skipped)."""
    answered: Mapped[int]
    """Of those, the ones answered so far."""


class PointsDay(Base):
    __tablename__ = "kpi_points_days"

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    issued: Mapped[int] = mapped_column(BigInteger)
    redeemed: Mapped[int] = mapped_column(BigInteger)
    expired: Mapped[int] = mapped_column(BigInteger)
    net: Mapped[int] = mapped_column(BigInteger)
    """Every entry's delta that day: the running sum is the outstanding liability."""


class TierDay(Base):
    """How the members holding a tier changed on a day: the running sum is who holds it."""

    __tablename__ = "kpi_tier_days"

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    tier_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    """NO_TIER: enrolled, no tier yet."""
    net: Mapped[int]


class Watermark(Base):
    __tablename__ = "kpi_watermarks"

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    read_until: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Spend(Base):
    """Marketing spend on a channel over a period (both days included), in the reporting currency."""

    __tablename__ = "marketing_spend"

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    channel: Mapped[str] = mapped_column(String(32))
    day_from: Mapped[date] = mapped_column(Date)
    day_until: Mapped[date] = mapped_column(Date)
    amount: Mapped[int] = mapped_column(BigInteger)
    note: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = created_at_column()


class Target(Base):
    __tablename__ = "kpi_targets"

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    kpi: Mapped[str] = mapped_column(String(40))
    day_from: Mapped[date] = mapped_column(Date)
    day_until: Mapped[date] = mapped_column(Date)
    dimension: Mapped[str | None] = mapped_column(String(16))
    """With `dimension_value`: a target for one channel, region, segment or tier; else overall."""
    dimension_value: Mapped[str | None] = mapped_column(String(64))
    target: Mapped[Decimal] = mapped_column(Numeric(20, 6))
    at_risk_within: Mapped[Decimal] = mapped_column(Numeric(6, 4))
    """How far on the wrong side of the target is still "at risk" (0.1: 10%); beyond: off track."""
    created_at: Mapped[datetime] = created_at_column()


class Dashboard(Base):
    __tablename__ = "dashboards"

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    name: Mapped[str] = mapped_column(String(100))
    widgets: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = created_at_column()


class AlertSeen(Base):
    """The status of a dashboard widget a viewer last saw: the alert list shows what changed since."""

    __tablename__ = "kpi_alerts_seen"

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    viewer: Mapped[str] = mapped_column(String(200), primary_key=True)
    widget: Mapped[str] = mapped_column(String(200), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    seen_at: Mapped[datetime] = created_at_column()
