"""The platform-level tenants table."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import DateTime, Numeric, String, func
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from brandloop.db.base import Base, created_at_column, uuid7


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = created_at_column()


class TenantSettings(Base):
    """What a tenant sets for itself: reporting currency, time zone, segmentation thresholds."""

    __tablename__ = "tenant_settings"

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    reporting_currency: Mapped[str] = mapped_column(String(3), default="CNY")
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    dormant_after_days: Mapped[int] = mapped_column(default=90)
    churned_after_days: Mapped[int] = mapped_column(default=180)
    rfm_window_days: Mapped[int] = mapped_column(default=365)
    survey_quiet_days: Mapped[int] = mapped_column(default=90)
    """A customer invited to or answering any survey is not invited again for this long."""
    nps_min_responses: Mapped[int] = mapped_column(default=30)
    """Report groups with fewer responses are flagged as too small to read."""
    detractor_follow_up_hours: Mapped[int] = mapped_column(default=48)
    """A detractor's follow-up task is due this long after the response."""
    conflict_auto_resolve_hours: Mapped[int] = mapped_column(default=72)
    """A price conflict whose listings are back within policy resolves itself after this long."""
    gross_margin: Mapped[Decimal | None] = mapped_column(Numeric(5, 4))
    """Share of revenue kept after the cost of goods (0 to 1), for CLV; unset: CLV is not shown."""
    escalation_ladder: Mapped[list[str]] = mapped_column(
        ARRAY(String(40)), default=lambda: ["warning", "formal_notice", "supply_hold", "termination"]
    )
    """The steps a partner climbs, one per confirmed conflict."""
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
