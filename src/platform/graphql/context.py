"""What a resolver sees of its request: the caller, its one transaction, its DataLoaders."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.dataloader import DataLoader
from strawberry.types import Info as StrawberryInfo

from brandloop.auth.permissions import Permission, Principal
from brandloop.errors import Forbidden
from brandloop.settings import Settings

P = ParamSpec("P")
R = TypeVar("R")
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(eq=False)
class RequestContext:
    principal: Principal
    session: AsyncSession
    settings: Settings
    request_id: str
    cost: int | None = None
    """The operation's cost, as the cost check computed it (cached plans keep it)."""
    # Sibling fields resolve concurrently, but the transaction's one connection serves one
    # statement at a time; DataLoaders batch, so serialising loses nothing.
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _loaders: dict[str, DataLoader[Any, Any]] = field(default_factory=dict)

    def require(self, permission: Permission) -> None:
        if not self.principal.can(permission):
            raise Forbidden(
                f"Your role ({self.principal.role.value}) lacks the {permission.value} permission."
            )

    async def run(
        self,
        fn: Callable[Concatenate[AsyncSession, P], Awaitable[R]],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> R:
        """Run a service function on the request's transaction."""
        async with self._lock:
            return await fn(self.session, *args, **kwargs)

    async def mutate(
        self,
        fn: Callable[Concatenate[AsyncSession, P], Awaitable[R]],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> R:
        """Run a service function in a savepoint: on any error, none of its writes remain."""
        async with self._lock:
            self._loaders.clear()  # what they cached may be about to change
            async with self.session.begin_nested():
                return await fn(self.session, *args, **kwargs)

    def loader(self, name: str, load: Callable[[list[K]], Awaitable[list[V]]]) -> DataLoader[K, V]:
        """The request's DataLoader called `name`, created on first use."""
        found = self._loaders.get(name)
        if found is None:
            found = self._loaders[name] = DataLoader(load_fn=load)
        return found


Info = StrawberryInfo[RequestContext, None]
