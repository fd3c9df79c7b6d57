"""Loyalty programs, their versioned earning rules, accounts, and the points ledger with its lots."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ARRAY, BigInteger, DateTime, ForeignKeyConstraint, Numeric, SmallInteger, String, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from brandloop.customers.models import of_customer
from brandloop.db.base import Base, created_at_column, uuid7


def of_program() -> ForeignKeyConstraint:
    return ForeignKeyConstraint(
        ["tenant_id", "program_id"], ["loyalty_programs.tenant_id", "loyalty_programs.id"]
    )


def of_account() -> ForeignKeyConstraint:
    return ForeignKeyConstraint(
        ["tenant_id", "account_id"], ["loyalty_accounts.tenant_id", "loyalty_accounts.id"]
    )


class Program(Base):
    __tablename__ = "loyalty_programs"

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    name: Mapped[str] = mapped_column(String(100))
    points_name: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16))
    channels: Mapped[list[str]] = mapped_column(ARRAY(String(32)), default=list)
    """The channels whose orders earn; empty for every channel."""
    enrolment: Mapped[str] = mapped_column(String(16))
    expiry_policy: Mapped[str] = mapped_column(String(16))
    expiry_period: Mapped[int | None] = mapped_column(SmallInteger)
    """Months after earning, or the Nth calendar year's end (1: the year the points were earned)."""
    pending_days: Mapped[int] = mapped_column(SmallInteger, default=0)
    point_cost: Mapped[Decimal] = mapped_column(Numeric(18, 6), default=Decimal(0))
    """What one point costs the brand, in minor units of the reporting currency (for the liability)."""
    tier_window_days: Mapped[int] = mapped_column(SmallInteger, default=365)
    """The rolling window of qualifying spend and interaction points for tiers."""
    tier_review_months: Mapped[int] = mapped_column(SmallInteger, default=12)
    """How long a tier holds before a review may lower it (by one tier at most)."""
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class RuleVersion(Base):
    """A program's earning rules from `effective_from` on; never changed once written."""

    __tablename__ = "loyalty_rule_versions"
    __table_args__ = (of_program(),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    program_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(primary_key=True)
    effective_from: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    rules: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = created_at_column()


class Account(Base):
    __tablename__ = "loyalty_accounts"
    __table_args__ = (of_program(), of_customer())

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    program_id: Mapped[uuid.UUID]
    customer_id: Mapped[uuid.UUID]
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    """The sum of the account's ledger, kept with every entry (loyaltyLedgerCheck verifies it)."""
    enrolled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    tier_id: Mapped[uuid.UUID | None]
    tier_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    tier_review_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Tier(Base):
    __tablename__ = "loyalty_tiers"
    __table_args__ = (of_program(),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    program_id: Mapped[uuid.UUID]
    name: Mapped[str] = mapped_column(String(100))
    rank: Mapped[int] = mapped_column(SmallInteger)
    """0 is the entry tier; higher ranks need more."""
    spend_threshold: Mapped[int] = mapped_column(BigInteger)
    """Qualifying spend in the window, in minor units of the reporting currency."""
    interaction_threshold: Mapped[int] = mapped_column(BigInteger)
    """Points from events (reviews, referrals, ...) in the window."""
    multiplier: Mapped[Decimal] = mapped_column(Numeric(8, 4), default=Decimal(1))
    benefits: Mapped[list[str]] = mapped_column(ARRAY(String(200)), default=list)


class TierChange(Base):
    __tablename__ = "loyalty_tier_changes"
    __table_args__ = (of_account(),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    account_id: Mapped[uuid.UUID]
    from_tier_id: Mapped[uuid.UUID | None]
    to_tier_id: Mapped[uuid.UUID | None]
    reason: Mapped[str] = mapped_column(String(16))
    qualifying_spend: Mapped[int] = mapped_column(BigInteger)
    interaction_points: Mapped[int] = mapped_column(BigInteger)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Reward(Base):
    __tablename__ = "loyalty_rewards"
    __table_args__ = (of_program(),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    program_id: Mapped[uuid.UUID]
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(String(1000))
    kind: Mapped[str] = mapped_column(String(16))
    points_cost: Mapped[int] = mapped_column(BigInteger)
    stock: Mapped[int | None]
    """What is left to redeem; None for no limit."""
    per_customer_limit: Mapped[int | None]
    min_tier_rank: Mapped[int | None] = mapped_column(SmallInteger)
    valid_from: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    valid_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Redemption(Base):
    __tablename__ = "loyalty_redemptions"
    __table_args__ = (
        of_account(),
        ForeignKeyConstraint(["tenant_id", "reward_id"], ["loyalty_rewards.tenant_id", "loyalty_rewards.id"]),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    account_id: Mapped[uuid.UUID]
    reward_id: Mapped[uuid.UUID]
    points: Mapped[int] = mapped_column(BigInteger)
    code: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16))
    idempotency_key: Mapped[str] = mapped_column(String(200))
    lots: Mapped[list[list[str | int]]] = mapped_column(JSONB)
    """[lot id, points] taken from each lot: a cancellation puts them back where they were."""
    actor: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = created_at_column()
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancel_reason: Mapped[str | None] = mapped_column(String(500))


class LedgerEntry(Base):
    __tablename__ = "loyalty_ledger"
    __table_args__ = (of_account(),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    account_id: Mapped[uuid.UUID]
    delta: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16))
    source_id: Mapped[str | None] = mapped_column(String(64))
    idempotency_key: Mapped[str] = mapped_column(String(200))
    effective_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    rule_version: Mapped[int | None]
    reason: Mapped[str | None] = mapped_column(String(500))
    actor: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = created_at_column()


class OrderValuation(Base):
    """What an order was worth when first seen paid; refunds and cancellations scale it."""

    __tablename__ = "loyalty_order_valuations"
    __table_args__ = (of_program(),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    program_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    order_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    points: Mapped[int] = mapped_column(BigInteger)
    uncapped_points: Mapped[int] = mapped_column(BigInteger)
    spend: Mapped[int] = mapped_column(BigInteger)
    """The order's total in minor units of the reporting currency (qualifying spend for tiers)."""
    rule_version: Mapped[int]
    valued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Lot(Base):
    """Points earned together, spent and expired first-earned first; `remaining` is what is left."""

    __tablename__ = "loyalty_lots"
    __table_args__ = (of_account(),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    """The id of the ledger entry that earned it."""
    account_id: Mapped[uuid.UUID]
    points: Mapped[int] = mapped_column(BigInteger)
    remaining: Mapped[int] = mapped_column(BigInteger)
    earned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    available_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ProgramStatus(enum.StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    """Earns nothing new; balances and redemptions stay."""
    CLOSED = "closed"


class Enrolment(enum.StrEnum):
    AUTOMATIC = "automatic"
    """A customer joins with their first earning order."""
    EXPLICIT = "explicit"
    """Only enrolled customers earn."""


class ExpiryPolicy(enum.StrEnum):
    NONE = "none"
    MONTHS = "months"
    """Points expire `period` months after they were earned."""
    YEAR_END = "year_end"
    """Points expire at the end of the `period`th calendar year (1: the year they were earned)."""


class EntryKind(enum.StrEnum):
    EARN = "earn"
    REDEEM = "redeem"
    EXPIRE = "expire"
    REVERSE = "reverse"
    ADJUST = "adjust"
    TRANSFER = "transfer"


class EntrySource(enum.StrEnum):
    ORDER = "order"
    EVENT = "event"
    REDEMPTION = "redemption"
    ADMIN = "admin"
    EXPIRY = "expiry"
    MERGE = "merge"


class RewardKind(enum.StrEnum):
    COUPON = "coupon"
    FREE_PRODUCT = "free_product"
    GIFT = "gift"


class RewardStatus(enum.StrEnum):
    ACTIVE = "active"
    RETIRED = "retired"


class RedemptionStatus(enum.StrEnum):
    ISSUED = "issued"
    CANCELLED = "cancelled"
