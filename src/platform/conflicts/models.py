"""Channel conflicts: the partners who sell, the policies they must keep, the listings seen, and
the conflicts with their evidence and timeline (../shared/DOMAIN.md, "Channel conflicts")."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, DateTime, Numeric, SmallInteger, String, case
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.orm import Mapped, column_property, mapped_column

from brandloop.db.base import Base, created_at_column, uuid7


class PartnerLevel(enum.StrEnum):
    BRAND = "brand"
    DISTRIBUTOR = "distributor"
    DEALER = "dealer"
    RETAILER = "retailer"
    MARKETPLACE_SELLER = "marketplace_seller"


class ConflictType(enum.StrEnum):
    HORIZONTAL = "horizontal"
    """Between channels of the same level (two resellers, two marketplace stores)."""
    VERTICAL = "vertical"
    """Between levels (brand and retailer, distributor and dealer)."""
    MULTI_CHANNEL = "multi_channel"
    """Online against offline, a marketplace against the brand's own store."""


class Cause(enum.StrEnum):
    BELOW_MAP = "below_map"
    OUT_OF_TERRITORY = "out_of_territory"
    CUSTOMER_POACHING = "customer_poaching"
    CAMPAIGN_NON_EXECUTION = "campaign_non_execution"
    UNAUTHORISED_SELLER = "unauthorised_seller"
    OTHER = "other"


class ConflictStatus(enum.StrEnum):
    OPEN = "open"
    INVESTIGATING = "investigating"
    NOTICE_SENT = "notice_sent"
    ESCALATED = "escalated"
    RESOLVED = "resolved"
    DISMISSED = "dismissed"


class Strategy(enum.StrEnum):
    ROLE_DIVISION = "role_division"
    DIFFERENTIATION = "differentiation"
    TERRITORY_PROTECTION = "territory_protection"
    SHARED_INCENTIVES = "shared_incentives"
    ENFORCEMENT = "enforcement"


class Severity(enum.StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class Partner(Base):
    __tablename__ = "channel_partners"

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    name: Mapped[str] = mapped_column(String(200))
    level: Mapped[str] = mapped_column(String(24))
    channel: Mapped[str] = mapped_column(String(32))
    seller_id: Mapped[str | None] = mapped_column(String(128))
    """The channel's own id of this seller, as listings name it."""
    authorised: Mapped[bool]
    territories: Mapped[list[str]] = mapped_column(ARRAY(String(6)), default=list)
    """ISO 3166-2 regions (or ISO 3166-1 countries) the partner may sell in; empty: anywhere."""
    contacts: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    violation_level: Mapped[int] = mapped_column(SmallInteger, default=0)
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = created_at_column()


class PricePolicy(Base):
    """A minimum advertised price for a SKU, on one channel or all, while valid."""

    __tablename__ = "price_policies"

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    sku: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str | None] = mapped_column(String(32))
    currency: Mapped[str] = mapped_column(String(3))
    digits: Mapped[int] = mapped_column(SmallInteger)
    """The currency's minor-unit digits, for comparing across currencies in SQL."""
    min_price: Mapped[int] = mapped_column(BigInteger)
    valid_from: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    valid_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at_column()


class PriceException(Base):
    """A promotion: a lower price a policy allows, in a window, for named partners or channels."""

    __tablename__ = "price_exceptions"

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    policy_id: Mapped[uuid.UUID]
    min_price: Mapped[int] = mapped_column(BigInteger)
    """In the policy's currency."""
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    partner_ids: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(PG_UUID(as_uuid=True)), default=list)
    channels: Mapped[list[str]] = mapped_column(ARRAY(String(32)), default=list)
    reason: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = created_at_column()


class Observation(Base):
    """A listing seen on a channel: who sells which SKU at what price, where and when."""

    __tablename__ = "listing_observations"

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    channel: Mapped[str] = mapped_column(String(32))
    sku: Mapped[str] = mapped_column(String(64))
    seller_id: Mapped[str] = mapped_column(String(128))
    seller_name: Mapped[str | None] = mapped_column(String(200))
    price: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    digits: Mapped[int] = mapped_column(SmallInteger)
    region: Mapped[str | None] = mapped_column(String(6))
    url: Mapped[str | None] = mapped_column(String(2000))
    listing_id: Mapped[str | None] = mapped_column(String(128))
    observed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    within_policy: Mapped[bool | None]
    """Set by detection: None when no policy applies (or no exchange rate to judge by)."""
    created_at: Mapped[datetime] = created_at_column()


class Conflict(Base):
    __tablename__ = "conflicts"

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    type: Mapped[str] = mapped_column(String(16))
    cause: Mapped[str] = mapped_column(String(32))
    partner_id: Mapped[uuid.UUID]
    sku: Mapped[str | None] = mapped_column(String(64))
    channel: Mapped[str | None] = mapped_column(String(32))
    region: Mapped[str | None] = mapped_column(String(6))
    policy_id: Mapped[uuid.UUID | None]
    breaches: Mapped[int] = mapped_column(default=1)
    """How many observations (or orders) broke the policy."""
    worst_gap: Mapped[Decimal] = mapped_column(Numeric(6, 4), default=Decimal(0))
    """The largest breach as a share of the policy's price (0.25: a quarter below MAP)."""
    severity_override: Mapped[str | None] = mapped_column(String(8))
    severity: Mapped[str] = column_property(
        case(
            (severity_override.is_not(None), severity_override),
            ((worst_gap >= Decimal("0.30")) | (breaches >= 10), Severity.CRITICAL.value),
            ((worst_gap >= Decimal("0.15")) | (breaches >= 5), Severity.HIGH.value),
            ((worst_gap >= Decimal("0.05")) | (breaches >= 2), Severity.MEDIUM.value),
            else_=Severity.LOW.value,
        )
    )
    """From the size of the worst breach and how often it happened, unless overridden (one
    definition, for reads and filters alike)."""
    owner: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    resolution_strategy: Mapped[str | None] = mapped_column(String(24))
    resolution: Mapped[str | None] = mapped_column(String(2000))
    confirmed: Mapped[bool] = mapped_column(default=False)
    """Someone acted on it (a notice, an escalation, a resolution): it raised the partner's level."""
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_breach_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = created_at_column()


class Evidence(Base):
    __tablename__ = "conflict_evidence"

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    conflict_id: Mapped[uuid.UUID]
    observation_id: Mapped[uuid.UUID | None]
    price: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))
    policy_price: Mapped[int | None] = mapped_column(BigInteger)
    policy_currency: Mapped[str | None] = mapped_column(String(3))
    url: Mapped[str | None] = mapped_column(String(2000))
    listing_id: Mapped[str | None] = mapped_column(String(128))
    region: Mapped[str | None] = mapped_column(String(6))
    order_id: Mapped[uuid.UUID | None]
    """An order shipped outside its seller's territory."""
    observed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    notes: Mapped[str | None] = mapped_column(String(2000))
    attachments: Mapped[list[str]] = mapped_column(ARRAY(String(2000)), default=list)
    """References (URLs) to screenshots, letters, files kept elsewhere."""
    created_at: Mapped[datetime] = created_at_column()


class Event(Base):
    """One line of a conflict's timeline: a change of status, a note, an assignment, evidence."""

    __tablename__ = "conflict_events"

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    conflict_id: Mapped[uuid.UUID]
    at: Mapped[datetime] = created_at_column()
    actor: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    """opened, status, note, assigned, evidence, severity."""
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str | None] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(String(4000))


class Watermark(Base):
    """How far territory detection has read the tenant's orders (by their update time)."""

    __tablename__ = "conflict_watermarks"

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    orders_until: Mapped[datetime] = mapped_column(DateTime(timezone=True))
