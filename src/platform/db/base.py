"""The declarative base shared by every domain's models."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TypeVar

import uuid6
from sqlalchemy import DateTime, MetaData, Select, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def uuid7() -> uuid.UUID:
    """Time-ordered ids: new rows land at the end of the index, and ids sort by creation."""
    return uuid.UUID(bytes=uuid6.uuid7().bytes)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


M = TypeVar("M", bound=Base)


def created_at_column() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


def keyset_page(
    query: Select[tuple[M]], model: type[M], first: int, after: uuid.UUID | None
) -> Select[tuple[M]]:
    """Up to `first` rows after the id `after`, by id (ids are time-ordered: oldest first)."""
    id_column = model.id  # type: ignore[attr-defined]
    query = query.order_by(id_column).limit(first)
    return query if after is None else query.where(id_column > after)
