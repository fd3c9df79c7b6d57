"""Customers, tenant-defined tags, and which customer carries which tag."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKeyConstraint, LargeBinary, SmallInteger, String, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from brandloop.db.base import Base, created_at_column, uuid7


def of_customer() -> ForeignKeyConstraint:
    """A row that belongs to a customer, within its tenant, and goes with it."""
    return ForeignKeyConstraint(
        ["tenant_id", "customer_id"], ["customers.tenant_id", "customers.id"], ondelete="CASCADE"
    )


class Customer(Base):
    __tablename__ = "customers"

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    display_name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(20))
    lifecycle_stage: Mapped[str] = mapped_column(String(16), default="prospect")
    merged_into_id: Mapped[uuid.UUID | None]
    """Set while this profile is merged into another (the survivor)."""
    erased_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """Set when the person's data was erased; the profile stays, anonymous, for the totals."""
    # Kept by the segmentation job (customers/segments.py); money in reporting-currency minor units.
    first_order_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_order_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    recency_days: Mapped[int | None]
    frequency: Mapped[int | None]
    monetary: Mapped[int | None] = mapped_column(BigInteger)
    lifetime_spend: Mapped[int | None] = mapped_column(BigInteger)
    r_score: Mapped[int | None] = mapped_column(SmallInteger)
    f_score: Mapped[int | None] = mapped_column(SmallInteger)
    m_score: Mapped[int | None] = mapped_column(SmallInteger)
    rfm_segment: Mapped[str | None] = mapped_column(String(16))
    value_tier: Mapped[str] = mapped_column(String(16), default="prospect")
    scored_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class Tag(Base):
    __tablename__ = "tags"

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16), default="static")
    created_at: Mapped[datetime] = created_at_column()


class CustomerTag(Base):
    __tablename__ = "customer_tags"
    __table_args__ = (
        of_customer(),
        ForeignKeyConstraint(["tenant_id", "tag_id"], ["tags.tenant_id", "tags.id"], ondelete="CASCADE"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    tag_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = created_at_column()


class CustomerIdentity(Base):
    """A (kind, value) that names one person, e.g. ("wechat_unionid", "o6_bmasdasdsad6_2sgVt7hMZOPfL")."""

    __tablename__ = "customer_identities"
    __table_args__ = (of_customer(),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    customer_id: Mapped[uuid.UUID]
    kind: Mapped[str] = mapped_column(String(32))
    value: Mapped[str] = mapped_column(String(254))
    source: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = created_at_column()


class BlockedIdentity(Base):
    """A value the tenant never matches on (a shared shop phone, a placeholder address)."""

    __tablename__ = "identity_blocklist"

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(String(254), primary_key=True)
    created_at: Mapped[datetime] = created_at_column()


class CustomerMerge(Base):
    """One profile merged into another: by which rule, by whom, and what moved (to undo it)."""

    __tablename__ = "customer_merges"

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    survivor_id: Mapped[uuid.UUID]
    merged_id: Mapped[uuid.UUID]
    rule: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(200))
    moved: Mapped[dict[str, list[str]]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = created_at_column()
    undone_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    undone_by: Mapped[str | None] = mapped_column(String(200))


class Consent(Base):
    """A grant or withdrawal of consent; the latest per channel and purpose is in force."""

    __tablename__ = "consents"
    __table_args__ = (of_customer(),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    customer_id: Mapped[uuid.UUID]
    channel: Mapped[str] = mapped_column(String(32))
    purpose: Mapped[str] = mapped_column(String(16))
    granted: Mapped[bool]
    source: Mapped[str] = mapped_column(String(64))
    evidence: Mapped[str | None] = mapped_column(String(1000))
    actor: Mapped[str] = mapped_column(String(200))
    recorded_at: Mapped[datetime] = created_at_column()


class ErasedIdentity(Base):
    """The digest of an erased person's identity: new data carrying it is not joined to anyone."""

    __tablename__ = "erased_identities"

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    digest: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    erased_at: Mapped[datetime] = created_at_column()
