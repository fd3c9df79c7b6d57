"""Followers of a brand's account (WeChat): following makes someone a customer who consented to
the account's marketing and surveys; unfollowing withdraws both, which stops survey invitations
on the channel. Run by the job `connections.catch_up` from the stored push events, in order."""

from __future__ import annotations

import uuid
from datetime import datetime

import httpx
import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from brandloop.connections import service
from brandloop.connections.models import Connection, ConnectionStatus, WebhookEvent
from brandloop.connections.platforms import Platforms
from brandloop.connections.vault import Vault
from brandloop.connectors import EventKind, Follower, FollowerSource, PlatformError
from brandloop.customers.models import CustomerIdentity
from brandloop.customers.privacy import Purpose, record_consent
from brandloop.customers.resolution import resolve_buyers
from brandloop.errors import InvalidInput
from brandloop.orders.service import BuyerInput, buyer_of

log = structlog.get_logger("brandloop.followers")

PURPOSES = (Purpose.MARKETING, Purpose.SURVEYS)
"""What following an account consents to on its channel, and unfollowing withdraws."""
BATCH = 200


async def follow(session: AsyncSession, vault: Vault, platforms: Platforms, *, now: datetime) -> int:
    """Act on the pending events of the tenant's follower accounts, oldest first; a follower the
    platform fails for keeps their events, in order, for the next run. Returns how many were
    handled."""
    sources = [key for key, plugin in service.connectors().items() if isinstance(plugin, FollowerSource)]
    rows = await session.execute(
        select(WebhookEvent, Connection)
        .join(Connection, Connection.id == WebhookEvent.connection_id)
        .where(
            WebhookEvent.processed_at.is_(None),
            Connection.status == ConnectionStatus.ACTIVE,
            Connection.connector.in_(sources),
        )
        .order_by(WebhookEvent.id)
        .limit(BATCH)
    )
    failing: set[tuple[uuid.UUID, str]] = set()
    handled = 0
    for event, connection in rows.all():
        plugin = service.connector(connection.connector)
        assert isinstance(plugin, FollowerSource)
        follower = (connection.id, str(event.payload.get("follower_id")))
        if follower in failing:
            continue
        try:
            if event.kind == EventKind.FOLLOWED:
                await _followed(session, vault, platforms, connection, plugin, follower[1])
            elif event.kind == EventKind.UNFOLLOWED:
                await _unfollowed(session, connection, follower[1])
        except (httpx.HTTPError, PlatformError) as error:
            log.warning("follower not handled", connection=str(connection.id), error=type(error).__name__)
            failing.add(follower)  # their later events wait, so that they stay in order
            continue
        except InvalidInput as error:  # an id no identity can hold: nothing will make it one
            log.warning("follower id refused", connection=str(connection.id), error=str(error)[:200])
        event.processed_at = now
        handled += 1
    await session.flush()
    return handled


async def _followed(
    session: AsyncSession,
    vault: Vault,
    platforms: Platforms,
    connection: Connection,
    plugin: FollowerSource,
    follower_id: str,
) -> None:
    follower: Follower = await service.call_platform(
        session, vault, platforms, connection,
        lambda client, config, grant: plugin.fetch_follower(client, config, grant, follower_id),
    )  # fmt: skip
    if not follower.following:
        return  # gone again before we asked: their unfollow event follows
    buyer = follower.buyer
    (customer_id,) = await resolve_buyers(
        session,
        [buyer_of(connection.connector, BuyerInput(buyer.name, buyer.email, buyer.phone, buyer.buyer_id,
                                                   buyer.wechat_unionid, buyer.wechat_openid))],
    )  # fmt: skip
    if customer_id is None:
        return  # the identity is blocked or erased: nobody to record consent for
    evidence = f"followed {connection.name!r}" + (f" from {follower.source}" if follower.source else "")
    for purpose in PURPOSES:
        await record_consent(
            session, customer_id, channel=connection.connector, purpose=purpose, granted=True,
            source=f"{connection.connector}:follow", evidence=evidence[:500], actor=f"connector:{connection.connector}",
        )  # fmt: skip


async def _unfollowed(session: AsyncSession, connection: Connection, follower_id: str) -> None:
    (identity,) = buyer_of(connection.connector, BuyerInput(buyer_id=follower_id)).identities
    customer_id = await session.scalar(
        select(CustomerIdentity.customer_id).where(
            CustomerIdentity.kind == identity.kind, CustomerIdentity.value == identity.value
        )
    )
    if customer_id is None:
        return  # never known here
    for purpose in PURPOSES:
        await record_consent(
            session, customer_id, channel=connection.connector, purpose=purpose, granted=False,
            source=f"{connection.connector}:unfollow", evidence=f"unfollowed {connection.name!r}"[:500],
            actor=f"connector:{connection.connector}",
        )  # fmt: skip
