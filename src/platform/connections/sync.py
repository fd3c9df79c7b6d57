"""The sync engine: a connection's orders, pulled page by page through its connector.

Each page is ingested and the checkpoint moved past it in one transaction, so a worker killed at
any point resumes at the first page not stored, and a page fetched twice changes nothing (orders
are upserted by channel and id, newer versions only). The checkpoint row is locked (SKIP LOCKED):
two workers never pull the same connection at once. Windows are at most a day and start
`OVERLAP` before the last one ended, for changes the platform indexes late; a first sync starts
`INITIAL_DAYS` back. An expired access token is refreshed once and the page retried; a revoked
grant stops the connection until it is authorized again; any other failure is recorded on the
checkpoint and retried after an exponential backoff with jitter (one minute, doubling, at most an
hour), or after the platform's own Retry-After.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import structlog
from sqlalchemy import exists, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement

from brandloop.audit import service as audit
from brandloop.conflicts import detection as conflicts
from brandloop.connections import followers, service
from brandloop.connections.models import Checkpoint, Connection, ConnectionStatus, WebhookEvent
from brandloop.connections.platforms import Platforms
from brandloop.connections.vault import Vault
from brandloop.connectors import (
    AuthorizationRevoked,
    Capability,
    Connector,
    EventKind,
    ListingObservation,
    OrderRecord,
    Page,
    PlatformError,
    RateLimited,
    TimeWindow,
    retry_after,
)
from brandloop.db.session import current_tenant
from brandloop.errors import InvalidInput, Problem
from brandloop.orders import service as orders

log = structlog.get_logger("brandloop.sync")

ORDERS = "orders"
INITIAL_DAYS = 30
WINDOW = timedelta(days=1)
OVERLAP = timedelta(minutes=10)
SCHEDULE = "*/5 * * * *"
"""When the job `connections.sync` runs for every tenant (crontab, UTC)."""
ROUNDS = 50
"""Pages per connection per run of the job: one connection cannot hold a worker for long."""
BACKOFF = timedelta(minutes=1)
MAX_BACKOFF = timedelta(hours=1)


def _order(channel: str, record: OrderRecord) -> orders.OrderInput:
    return orders.OrderInput(
        channel=channel,
        external_id=record.external_id,
        status=record.status,
        currency=record.currency,
        total=record.total,
        placed_at=record.placed_at,
        lines=[
            orders.LineInput(x.sku, x.product_name, x.quantity, x.unit_price, x.category)
            for x in record.lines
        ],
        subtotal=record.subtotal,
        discount=record.discount,
        shipping=record.shipping,
        tax=record.tax,
        refunded=record.refunded,
        updated_at=record.updated_at,
        ship_region=record.ship_region,
        seller_id=record.seller_id,
        buyer=service.buyer_input(record.buyer) if record.buyer else None,
    )


async def _ingest_orders(
    session: AsyncSession, connection: Connection, records: Sequence[OrderRecord]
) -> None:
    valid = []
    for record in records:
        try:
            valid.append(orders.validate(_order(connection.connector, record)))
        except InvalidInput as error:
            log.warning(
                "order refused", connection=str(connection.id), order=record.external_id, error=str(error)
            )
    if valid:
        await orders.ingest(session, valid)


async def _ingest_listings(
    session: AsyncSession, connection: Connection, records: Sequence[ListingObservation]
) -> None:
    valid = []
    for record in records:
        seen = conflicts.ObservationInput(
            channel=connection.connector, sku=record.sku, seller_id=record.seller_id, price=record.price,
            currency=record.currency, observed_at=record.observed_at, seller_name=record.seller_name,
            region=record.region, url=record.url, listing_id=record.listing_id,
        )  # fmt: skip
        try:
            valid.append(conflicts.observation_row(session, seen))
        except InvalidInput as error:
            log.warning("listing refused", connection=str(connection.id), sku=record.sku, error=str(error))
    if valid:
        await conflicts.store_observations(session, valid)


@dataclass(frozen=True, slots=True)
class Stream:
    """What the engine pulls from a connection, with its own checkpoint."""

    resource: str
    capability: Capability
    fetch: Callable[[Connector], Callable[..., Awaitable[Page[Any]]]]
    ingest: Callable[[AsyncSession, Connection, Sequence[Any]], Awaitable[None]]


ORDER_STREAM = Stream(ORDERS, Capability.ORDERS, lambda plugin: plugin.fetch_orders, _ingest_orders)
LISTING_STREAM = Stream(
    "listings", Capability.LISTINGS, lambda plugin: plugin.fetch_listings, _ingest_listings
)
STREAMS = (ORDER_STREAM, LISTING_STREAM)


async def _checkpoint(
    session: AsyncSession, connection: Connection, resource: str, now: datetime
) -> Checkpoint | None:
    """The connection's checkpoint for a stream (made on first use), locked; None when another
    worker holds it."""
    await session.execute(
        pg_insert(Checkpoint)
        .values(
            tenant_id=connection.tenant_id,
            connection_id=connection.id,
            resource=resource,
            synced_until=now - timedelta(days=INITIAL_DAYS),
            failures=0,
            records_in=0,
        )
        .on_conflict_do_nothing()
    )
    return await session.scalar(
        select(Checkpoint)
        .where(Checkpoint.connection_id == connection.id, Checkpoint.resource == resource)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )


def _failed(checkpoint: Checkpoint, error: Exception, now: datetime) -> None:
    """Record a failure and when to try again: after the platform's Retry-After when it gave one,
    else an exponential backoff with jitter (so connections that failed together spread out)."""
    checkpoint.failures += 1
    wait = None
    if isinstance(error, RateLimited):
        wait = error.retry_after
    elif isinstance(error, httpx.HTTPStatusError):
        wait = retry_after(error.response, now)
    if wait is not None:
        delay = timedelta(seconds=wait)
    else:
        delay = min(BACKOFF * 2 ** (checkpoint.failures - 1), MAX_BACKOFF) * random.uniform(0.5, 1.0)  # noqa: S311
    checkpoint.retry_at = now + delay
    checkpoint.last_error = f"{type(error).__name__}: {error}"[:500]
    checkpoint.updated_at = datetime.now(UTC)


async def _fetch(
    session: AsyncSession,
    vault: Vault,
    platforms: Platforms,
    connection: Connection,
    stream: Stream,
    window: TimeWindow,
    cursor: str | None,
) -> Page[Any]:
    """One page, with the connection's grant (refreshed once if the platform says it expired)."""
    fetch = stream.fetch(service.connector(connection.connector))
    return await service.call_platform(
        session,
        vault,
        platforms,
        connection,
        lambda client, config, grant: fetch(client, config, grant, window, cursor),
    )


async def sync_page(
    session: AsyncSession,
    vault: Vault,
    platforms: Platforms,
    connection: Connection,
    *,
    now: datetime,
    stream: Stream = ORDER_STREAM,
) -> bool:
    """Pull one page of a stream (orders by default) and move its checkpoint past it, in the
    caller's transaction; True when there is more to pull now."""
    checkpoint = await _checkpoint(session, connection, stream.resource, now)
    if checkpoint is None or (checkpoint.cursor is None and checkpoint.synced_until >= now):
        return False
    if checkpoint.retry_at is not None and checkpoint.retry_at > now:
        return False
    if checkpoint.cursor is None or checkpoint.window_until is None:
        checkpoint.window_until = min(checkpoint.synced_until + WINDOW, now)
    window = TimeWindow(checkpoint.synced_until - OVERLAP, checkpoint.window_until)
    try:
        page = await _fetch(session, vault, platforms, connection, stream, window, checkpoint.cursor)
    except AuthorizationRevoked as error:
        _failed(checkpoint, error, now)
        if connection.status == ConnectionStatus.ACTIVE:
            await service.revoke(session, connection, str(error))
        return False
    except (httpx.HTTPError, PlatformError) as error:
        _failed(checkpoint, error, now)
        log.warning(
            "sync failed", connection=str(connection.id), stream=stream.resource, failures=checkpoint.failures
        )
        return False
    await stream.ingest(session, connection, page.records)
    if page.next_cursor is None:
        checkpoint.synced_until, checkpoint.cursor, checkpoint.window_until = window.until, None, None
    else:
        checkpoint.cursor = page.next_cursor
    checkpoint.failures, checkpoint.retry_at, checkpoint.last_error = 0, None, None
    checkpoint.records_in += len(page.records)
    checkpoint.last_success_at = checkpoint.updated_at = datetime.now(UTC)
    await session.flush()
    return checkpoint.cursor is not None or checkpoint.synced_until < now


async def sync_round(session: AsyncSession, vault: Vault, platforms: Platforms, *, now: datetime) -> int:
    """One page of every stream of every active connection; listings pulled are judged for
    conflicts at once. Returns how many streams have more."""
    more, listed = 0, False
    for connection in await _active(session):
        capabilities = service.connector(connection.connector).capabilities
        for stream in STREAMS:
            if stream.capability in capabilities:
                more += await sync_page(session, vault, platforms, connection, now=now, stream=stream)
                listed |= stream is LISTING_STREAM
    if listed:
        await conflicts.detect(session, now=now)
    return more


async def catch_up_round(session: AsyncSession, vault: Vault, platforms: Platforms, *, now: datetime) -> int:
    """Revocations and followers first; then one page for every active connection with webhook
    events to follow or a "sync now" request (the job `connections.catch_up`); a connection that
    has caught up has its events marked processed and its request cleared. Returns how many have
    more."""
    await _follow_revocations(session)
    # A full batch of followers: there may be more, so the job runs another round at once.
    more = int(await followers.follow(session, vault, platforms, now=now) >= followers.BATCH)
    pending = exists().where(WebhookEvent.connection_id == Connection.id, WebhookEvent.processed_at.is_(None))
    for connection in await _active(session, or_(Connection.sync_requested_at.is_not(None), pending)):
        if Capability.ORDERS not in service.connector(connection.connector).capabilities:
            continue
        if await sync_page(session, vault, platforms, connection, now=now):
            more += 1
            continue
        checkpoint = await session.get(Checkpoint, (connection.tenant_id, connection.id, ORDERS))
        if checkpoint is None or checkpoint.cursor is not None or checkpoint.synced_until < now:
            continue  # failing or backing off: the events wait
        await session.execute(
            update(WebhookEvent)
            .where(
                WebhookEvent.connection_id == connection.id,
                WebhookEvent.processed_at.is_(None),
                WebhookEvent.received_at < checkpoint.synced_until,
            )
            .values(processed_at=now)
        )
        connection.sync_requested_at = None
    await session.flush()
    return more


async def _follow_revocations(session: AsyncSession) -> None:
    """A shop that withdrew its grant: the connection stops until authorized again."""
    rows = await session.execute(
        select(WebhookEvent, Connection)
        .join(Connection, Connection.id == WebhookEvent.connection_id)
        .where(WebhookEvent.processed_at.is_(None), WebhookEvent.kind == EventKind.AUTHORIZATION_REVOKED)
    )
    for event, connection in rows.all():
        if connection.status == ConnectionStatus.ACTIVE:
            await service.revoke(session, connection, "the shop withdrew its authorization")
        event.processed_at = datetime.now(UTC)


async def _active(session: AsyncSession, *where: ColumnElement[bool]) -> list[Connection]:
    rows = await session.scalars(
        select(Connection).where(Connection.status == ConnectionStatus.ACTIVE, *where).order_by(Connection.id)
    )
    pulled = {stream.capability for stream in STREAMS}
    return [c for c in rows if pulled & service.connector(c.connector).capabilities]


async def request_sync(session: AsyncSession, connection_id: uuid.UUID, *, actor: str) -> Connection:
    """An admin's "sync now": the backoff is lifted and the catch-up job pulls it within a minute."""
    connection = await service.get_connection(session, connection_id, lock=True)
    if connection.status != ConnectionStatus.ACTIVE:
        raise InvalidInput(
            Problem(
                "id", "NOT_ACTIVE", f"The connection is {connection.status}: authorize or enable it first."
            )
        )
    connection.sync_requested_at = datetime.now(UTC)
    await session.execute(
        update(Checkpoint)
        .where(Checkpoint.tenant_id == current_tenant(session), Checkpoint.connection_id == connection_id)
        .values(retry_at=None)
    )
    await session.flush()
    await audit.record(
        session, actor=actor, action="connection.sync", target_type="Connection", target_id=connection.id
    )
    return connection
