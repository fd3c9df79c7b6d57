"""The sync engine: a connection's orders, pulled page by page through its connector.

Each page is ingested and the checkpoint moved past it in one transaction, so a worker killed at
any point resumes at the first page not stored, and a page fetched twice changes nothing (orders
are upserted by channel and id, newer versions only). The checkpoint row is locked (SKIP LOCKED):
two workers never pull the same connection at once. Windows are at most a day; a first sync
starts `INITIAL_DAYS` back. A failure is recorded on the checkpoint and retried with exponential
backoff (one minute, doubling, at most an hour).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import structlog
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from brandloop.connections import service
from brandloop.connections.models import Checkpoint, Connection, ConnectionStatus
from brandloop.connections.vault import Vault
from brandloop.connectors import Capability, OrderRecord, TimeWindow
from brandloop.errors import InvalidInput
from brandloop.orders import service as orders

log = structlog.get_logger("brandloop.sync")

ORDERS = "orders"
INITIAL_DAYS = 30
WINDOW = timedelta(days=1)
ROUNDS = 50
"""Pages per connection per run of the job: one connection cannot hold a worker for long."""
BACKOFF = timedelta(minutes=1)
MAX_BACKOFF = timedelta(hours=1)


def _order(channel: str, record: OrderRecord) -> orders.OrderInput:
    buyer = record.buyer
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
        buyer=orders.BuyerInput(
            name=buyer.name,
            email=buyer.email,
            phone=buyer.phone,
            buyer_id=buyer.buyer_id,
            wechat_unionid=buyer.wechat_unionid,
            wechat_openid=buyer.wechat_openid,
        )
        if buyer
        else None,
    )


async def _checkpoint(session: AsyncSession, connection: Connection, now: datetime) -> Checkpoint | None:
    """The connection's orders checkpoint (made on first use), locked; None when another worker
    holds it."""
    await session.execute(
        pg_insert(Checkpoint)
        .values(
            tenant_id=connection.tenant_id,
            connection_id=connection.id,
            resource=ORDERS,
            synced_until=now - timedelta(days=INITIAL_DAYS),
            failures=0,
        )
        .on_conflict_do_nothing()
    )
    return await session.scalar(
        select(Checkpoint)
        .where(Checkpoint.connection_id == connection.id, Checkpoint.resource == ORDERS)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )


async def sync_page(
    session: AsyncSession, vault: Vault, client: httpx.AsyncClient, connection: Connection, *, now: datetime
) -> bool:
    """Pull one page of the connection's changed orders and move its checkpoint past it, in the
    caller's transaction; True when there is more to pull now."""
    checkpoint = await _checkpoint(session, connection, now)
    if checkpoint is None or checkpoint.synced_until >= now:
        return False
    if checkpoint.retry_at is not None and checkpoint.retry_at > now:
        return False
    plugin = service.connector(connection.connector)
    window = TimeWindow(checkpoint.synced_until, min(checkpoint.synced_until + WINDOW, now))
    try:
        page = await plugin.fetch_orders(
            client,
            service.configuration(vault, connection),
            service.grant_of(vault, connection),
            window,
            checkpoint.cursor,
        )
    except httpx.HTTPError as error:
        checkpoint.failures += 1
        checkpoint.retry_at = now + min(BACKOFF * 2 ** (checkpoint.failures - 1), MAX_BACKOFF)
        checkpoint.last_error = f"{type(error).__name__}: {error}"[:500]
        log.warning("sync failed", connection=str(connection.id), failures=checkpoint.failures)
        return False
    valid = []
    for record in page.records:
        try:
            valid.append(orders.validate(_order(plugin.key, record)))
        except InvalidInput as error:
            log.warning(
                "order refused", connection=str(connection.id), order=record.external_id, error=str(error)
            )
    if valid:
        await orders.ingest(session, valid)
    if page.next_cursor is None:
        checkpoint.synced_until, checkpoint.cursor = window.until, None
    else:
        checkpoint.cursor = page.next_cursor
    checkpoint.failures, checkpoint.retry_at, checkpoint.last_error = 0, None, None
    checkpoint.updated_at = datetime.now(UTC)
    await session.flush()
    return checkpoint.synced_until < now


async def sync_round(session: AsyncSession, vault: Vault, client: httpx.AsyncClient, *, now: datetime) -> int:
    """One page for every active connection that pulls orders; returns how many have more."""
    more = 0
    for connection in await active_order_connections(session):
        more += await sync_page(session, vault, client, connection, now=now)
    return more


async def active_order_connections(session: AsyncSession) -> list[Connection]:
    rows = await session.scalars(select(Connection).where(Connection.status == ConnectionStatus.ACTIVE))
    return [c for c in rows if Capability.ORDERS in service.connector(c.connector).capabilities]
