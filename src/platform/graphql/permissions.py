"""`Needs(permission)`: the field extension every root query and mutation declares."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from strawberry.extensions import FieldExtension
from strawberry.types.field import StrawberryField

from brandloop.auth.permissions import Permission


class Needs(FieldExtension):
    """Refuses the field with FORBIDDEN unless the caller's role has `permission`."""

    def __init__(self, permission: Permission) -> None:
        self.permission = permission

    def apply(self, field: StrawberryField) -> None:
        # Runs for every schema built from the same field objects: add the note once.
        note = f"Needs the `{self.permission.value}` permission."
        if field.description is None:
            field.description = note
        elif note not in field.description:
            field.description = f"{field.description}\n\n{note}"

    def resolve(self, next_: Callable[..., Any], source: Any, info: Any, **kwargs: Any) -> Any:
        info.context.require(self.permission)
        return next_(source, info, **kwargs)

    async def resolve_async(
        self, next_: Callable[..., Awaitable[Any]], source: Any, info: Any, **kwargs: Any
    ) -> Any:
        info.context.require(self.permission)
        return await next_(source, info, **kwargs)
