"""Connections: a tenant's accounts on a channel (several per connector: several shops)."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, LargeBinary, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from brandloop.db.base import Base, created_at_column, uuid7


class ConnectionStatus(enum.StrEnum):
    PENDING = "pending"
    """Configured; the platform's authorization is still to be granted."""
    ACTIVE = "active"
    DISABLED = "disabled"
    """Turned off by an admin: nothing is pulled and webhooks are refused."""
    REVOKED = "revoked"
    """The platform no longer accepts the grant: authorize again."""


class Connection(Base):
    __tablename__ = "connections"

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    connector: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(100))
    config: Mapped[dict[str, Any]] = mapped_column(JSONB)
    """The configuration's plain fields; the secret ones are only in `secrets`, encrypted."""
    secrets: Mapped[bytes] = mapped_column(LargeBinary)
    """The secret fields as JSON, sealed by vault.py (AES-256-GCM, bound to tenant and connection)."""
    key_id: Mapped[str] = mapped_column(String(16))
    """Which encryption key sealed `secrets`."""
    grant_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    """The platform's grant (tokens), sealed like the secrets."""
    grant_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    authorized_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16))
    sync_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """An admin asked to sync now; cleared when the connection has caught up."""
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = created_at_column()


class WebhookEvent(Base):
    """A platform's event as delivered, verified and stored once (by its key)."""

    __tablename__ = "webhook_events"

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    connection_id: Mapped[uuid.UUID]
    key: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    received_at: Mapped[datetime] = created_at_column()
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Checkpoint(Base):
    """How far a connection's resource is synced: all changes before `synced_until` are in, and
    `cursor` is the next page of the window after it (None at a window's start)."""

    __tablename__ = "sync_checkpoints"

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    connection_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    resource: Mapped[str] = mapped_column(String(16), primary_key=True)
    synced_until: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    cursor: Mapped[str | None] = mapped_column(String(1000))
    failures: Mapped[int] = mapped_column(default=0)
    window_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """The end of the window `cursor` pages through."""
    retry_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(String(500))
    last_success_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    records_in: Mapped[int] = mapped_column(BigInteger, default=0)
    """Records pulled in so far (re-pulled ones included)."""
    updated_at: Mapped[datetime] = created_at_column()
