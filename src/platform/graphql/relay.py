"""Relay conventions: global ids, the Node interface, keyset-paged connections."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, Protocol, TypeVar

import strawberry

from brandloop.errors import ApiError, InvalidInput

T = TypeVar("T")


class BadInput(ApiError):
    code = "BAD_USER_INPUT"


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _unb64(text: str) -> str:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()


def global_id(type_name: str, pk: uuid.UUID) -> strawberry.ID:
    """An opaque id naming the type and the row; never the tenant (that comes from the caller)."""
    return strawberry.ID(_b64(f"{type_name}:{pk}"))


def parse_global_id(value: str) -> tuple[str, uuid.UUID]:
    """The type name and row id in a global id; BadInput when it is not one of ours."""
    try:
        type_name, _, pk = _unb64(value).partition(":")
        return type_name, uuid.UUID(pk)
    except (ValueError, binascii.Error, UnicodeDecodeError) as error:
        raise BadInput(f"{value[:100]!r} is not an id this API gave out.") from error


def pk_of(value: str, type_name: str) -> uuid.UUID:
    """The row id in a global id of the given type."""
    found_type, pk = parse_global_id(value)
    if found_type != type_name:
        raise BadInput(f"The id names a {found_type}, not a {type_name}.")
    return pk


def cursor_for(pk: uuid.UUID) -> str:
    return _b64(f"k:{pk}")


def parse_cursor(cursor: str | None) -> uuid.UUID | None:
    if cursor is None:
        return None
    try:
        mark, _, pk = _unb64(cursor).partition(":")
        if mark != "k":
            raise ValueError(mark)
        return uuid.UUID(pk)
    except (ValueError, binascii.Error, UnicodeDecodeError) as error:
        raise BadInput("The `after` cursor is not one this API gave out.") from error


def check_page_size(first: int, maximum: int) -> int:
    if not 1 <= first <= maximum:
        raise BadInput(f"`first` must be between 1 and {maximum}; page with `after` for more.")
    return first


@strawberry.interface(description="An object with a global id, fetchable with `node(id:)`.")
class Node:
    id: strawberry.ID


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo
    _count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="How many objects match, across all pages.")
    async def total_count(self) -> int:
        return await self._count()


class Row(Protocol):
    id: uuid.UUID


RowT = TypeVar("RowT", bound=Row)


async def paginate(
    first: int,
    after: str | None,
    *,
    max_page_size: int,
    fetch: Callable[[int, uuid.UUID | None], Awaitable[Sequence[RowT]]],
    count: Callable[[], Awaitable[int]],
    node: Callable[[RowT], T],
) -> Connection[T]:
    """One keyset page, rows ordered by id: `fetch(limit, after_id)` is asked for one row more
    than the page, which tells whether there is a next page."""
    first = check_page_size(first, max_page_size)
    cursor = parse_cursor(after)
    try:
        rows = await fetch(first + 1, cursor)
    except InvalidInput as error:
        raise BadInput(str(error)) from error
    edges = [Edge(cursor=cursor_for(row.id), node=node(row)) for row in rows[:first]]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=len(rows) > first,
            has_previous_page=cursor is not None,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        _count=count,
    )
