"""NPS surveys, their invitations, the responses, and detractors' follow-up tasks."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ARRAY, DateTime, ForeignKeyConstraint, SmallInteger, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from brandloop.customers.models import of_customer
from brandloop.db.base import Base, created_at_column, uuid7


class SurveyStatus(enum.StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    CLOSED = "closed"


class Trigger(enum.StrEnum):
    MANUAL = "manual"
    """Invited on request, to chosen customers."""
    AFTER_ORDER = "after_order"
    """Invited `trigger_delay_days` after an order reaches `trigger_status`."""


class InvitationStatus(enum.StrEnum):
    CREATED = "created"
    """The link exists; handing it to the customer is the tenant's (link delivery)."""
    RESPONDED = "responded"
    SKIPPED = "skipped"
    """Not sent (quiet period or no consent): kept so that response rates can say why."""


class TaskStatus(enum.StrEnum):
    OPEN = "open"
    CONTACTED = "contacted"
    RESOLVED = "resolved"


class Survey(Base):
    __tablename__ = "nps_surveys"

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    name: Mapped[str] = mapped_column(String(100))
    question: Mapped[dict[str, str]] = mapped_column(JSONB)
    """The question by language tag (zh-CN and en at least)."""
    comment_prompt: Mapped[dict[str, str] | None] = mapped_column(JSONB)
    """The open question by language; None for no comment box."""
    follow_ups: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    status: Mapped[str] = mapped_column(String(16))
    channels: Mapped[list[str]] = mapped_column(ARRAY(String(32)))
    trigger: Mapped[str] = mapped_column(String(16))
    trigger_status: Mapped[str | None] = mapped_column(String(24))
    trigger_delay_days: Mapped[int | None] = mapped_column(SmallInteger)
    link_days: Mapped[int] = mapped_column(SmallInteger, default=14)
    """How long an invitation's link stays valid."""
    follow_up_passives: Mapped[bool] = mapped_column(default=False)
    """Passives (7-8) get a follow-up task too, not only detractors."""
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = created_at_column()


class Invitation(Base):
    __tablename__ = "nps_invitations"
    __table_args__ = (
        of_customer(),
        ForeignKeyConstraint(["tenant_id", "survey_id"], ["nps_surveys.tenant_id", "nps_surveys.id"]),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    survey_id: Mapped[uuid.UUID]
    customer_id: Mapped[uuid.UUID]
    channel: Mapped[str] = mapped_column(String(32))
    order_id: Mapped[uuid.UUID | None]
    trigger_key: Mapped[str] = mapped_column(String(200))
    """One invitation per customer, survey and trigger event (unique per tenant)."""
    status: Mapped[str] = mapped_column(String(16))
    skip_reason: Mapped[str | None] = mapped_column(String(16))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at_column()
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """When the channel took it (link delivery: when the link was handed over)."""
    delivery_error: Mapped[str | None] = mapped_column(String(300))
    """Why the channel did not take it."""
    delivery_retry_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """When the channel is tried again (it failed for a passing reason); None: not again."""
    responded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Response(Base):
    __tablename__ = "nps_responses"
    __table_args__ = (
        of_customer(),
        ForeignKeyConstraint(
            ["tenant_id", "invitation_id"], ["nps_invitations.tenant_id", "nps_invitations.id"]
        ),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    invitation_id: Mapped[uuid.UUID]
    survey_id: Mapped[uuid.UUID]
    customer_id: Mapped[uuid.UUID]
    channel: Mapped[str] = mapped_column(String(32))
    order_id: Mapped[uuid.UUID | None]
    score: Mapped[int] = mapped_column(SmallInteger)
    comment: Mapped[str | None] = mapped_column(Text)
    answers: Mapped[list[Any]] = mapped_column(JSONB, default=list)
    created_at: Mapped[datetime] = created_at_column()


class Task(Base):
    """A follow-up of a detractor's (or passive's) response: someone calls them back."""

    __tablename__ = "nps_tasks"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "response_id"], ["nps_responses.tenant_id", "nps_responses.id"]),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    response_id: Mapped[uuid.UUID]
    owner: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    notes: Mapped[list[dict[str, str]]] = mapped_column(JSONB, default=list)
    created_at: Mapped[datetime] = created_at_column()
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    followed_up_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """When it first left "open": the follow-up on-time rate compares it with `due_at`."""
