"""The HTTP clients connectors call their platforms with, one per connection.

Every request of a connection is paced to its connector's documented quota (a leaky bucket from
aiolimiter), and to its operation's own where the platform's differ per operation (learning the
account's actual rate from the response where the platform states it), and retried where the
platform says so: a 429 after its Retry-After, a 5xx or a timeout with exponential backoff and
jitter (stamina). What still fails after the attempts reaches the connector as the last
response (or error), and the sync engine backs off for minutes. The buckets outlive a job run;
only one worker pulls a connection at a time (its checkpoint is locked), so pacing in that
worker paces the connection.
"""

from __future__ import annotations

import asyncio
import uuid
import weakref
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, field

import httpx
import stamina
from aiolimiter import AsyncLimiter
from cachetools import LRUCache

from brandloop.connectors import Connector, Quota, retry_after

TIMEOUT = httpx.Timeout(15.0)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 4
    wait_initial: float = 0.5
    wait_max: float = 8.0
    longest_retry_after: float = 30.0
    """A Retry-After longer than this is not waited for in the request: the sync engine
    schedules the connection's next try after it instead."""


DEFAULT_POLICY = RetryPolicy()


class _Retryable(Exception):
    def __init__(self, response: httpx.Response) -> None:
        super().__init__(response.status_code)
        self.response = response


class PacedTransport(httpx.AsyncBaseTransport):
    """A connection's requests through a shared transport: paced, and retried as the platform
    asks."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        connection_id: uuid.UUID,
        connector: Connector,
        policy: RetryPolicy,
    ) -> None:
        self._inner, self._connection_id, self._connector, self._policy = (
            inner,
            connection_id,
            connector,
            policy,
        )
        self._limiter = limiter(connection_id, connector.requests_per_second)

    def _operation(self, quota: Quota | None) -> AbstractAsyncContextManager[object]:
        if quota is None:
            return nullcontext()
        return limiter((self._connection_id, quota.operation), quota.rate, quota.burst)

    def _learn(self, quota: Quota | None, response: httpx.Response) -> None:
        """Pace the operation to the rate the platform says this account has."""
        stated = response.headers.get(quota.header) if quota is not None and quota.header else None
        try:
            rate = float(stated) if stated else 0.0
        except ValueError:
            return
        if quota is not None and 0 < rate <= 1000:
            limiter((self._connection_id, quota.operation), rate, quota.burst, renew=True)

    def _backoff(self, error: Exception) -> bool | float:
        if isinstance(error, _Retryable):
            wait = retry_after(error.response)
            if wait is None:
                return True
            return wait if wait <= self._policy.longest_retry_after else False
        return isinstance(error, httpx.TransportError)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        policy, quota = self._policy, self._connector.quota(request)
        try:
            async for attempt in stamina.retry_context(
                on=self._backoff,
                attempts=policy.attempts,
                timeout=None,
                wait_initial=policy.wait_initial,
                wait_max=policy.wait_max,
                wait_jitter=policy.wait_initial,
            ):
                with attempt:
                    async with self._limiter, self._operation(quota):
                        response = await self._inner.handle_async_request(request)
                    self._learn(quota, response)
                    if response.status_code == 429 or response.status_code >= 500:
                        await response.aread()
                        raise _Retryable(response)
                    return response
        except _Retryable as gave_up:
            return gave_up.response
        raise AssertionError("unreachable: stamina raises or the block returns")

    async def aclose(self) -> None:
        """The shared transport is closed by its owner (Platforms)."""


Bucket = uuid.UUID | tuple[uuid.UUID, str]
"""A connection, or one operation of a connection."""
_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LRUCache[Bucket, AsyncLimiter]] = (
    weakref.WeakKeyDictionary()
)


def limiter(key: Bucket, rate: float, burst: int | None = None, *, renew: bool = False) -> AsyncLimiter:
    """The bucket in this process, shared by every job run (one per event loop, as the bucket's
    waiters belong to one); the busiest 10,000 keep theirs. `renew` replaces a bucket of another
    rate. A bucket holds `burst` requests, at least one: under one a second, one per 1/rate s."""
    per_loop = _limiters.setdefault(asyncio.get_running_loop(), LRUCache(maxsize=20_000))
    size = burst or max(rate, 1)
    found = per_loop.get(key)
    if found is None or (renew and abs(found.max_rate / found.time_period - rate) > rate / 100):
        found = per_loop[key] = AsyncLimiter(size, size / rate)
    return found


@dataclass
class Platforms:
    """The clients of one worker's run: one connection pool, a paced client per connection."""

    policy: RetryPolicy = field(default_factory=lambda: DEFAULT_POLICY)
    transport: httpx.AsyncBaseTransport = field(default_factory=httpx.AsyncHTTPTransport)
    _clients: dict[uuid.UUID, httpx.AsyncClient] = field(default_factory=dict)

    def client(self, connection_id: uuid.UUID, connector: Connector) -> httpx.AsyncClient:
        if connection_id not in self._clients:
            self._clients[connection_id] = httpx.AsyncClient(
                transport=PacedTransport(self.transport, connection_id, connector, self.policy),
                timeout=TIMEOUT,
            )
        return self._clients[connection_id]

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()
        await self.transport.aclose()

    async def __aenter__(self) -> Platforms:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()
