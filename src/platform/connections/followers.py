"""Followers of a brand's account (WeChat): following makes someone a customer who consented to
the account's marketing and surveys; unfollowing withdraws both, which stops survey invitations
on the channel. Run by the job `connections.catch_up` from the stored push events, in order, a
batch at a time: one platform call per hundred followers, one identity resolution per batch."""

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
    """Act on the pending events of the tenant's follower accounts, oldest first, asking the
    platform about a batch's followers at once; an account the platform fails for keeps its
    events, in order, for the next run. Returns how many were handled."""
    sources = [key for key, plugin in service.connectors().items() if isinstance(plugin, FollowerSource)]
    rows = (
        await session.execute(
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
    ).all()
    accounts = {connection.id: connection for _, connection in rows}
    customers: dict[tuple[uuid.UUID, str], tuple[uuid.UUID | None, str]] = {}
    for connection in list(accounts.values()):
        followed = [
            str(e.payload["follower_id"])
            for e, c in rows
            if c.id == connection.id and e.kind == EventKind.FOLLOWED
        ]
        try:
            customers |= await _customers(session, vault, platforms, connection, followed)
        except (httpx.HTTPError, PlatformError) as error:
            log.warning("followers not handled", connection=str(connection.id), error=type(error).__name__)
            accounts.pop(connection.id)  # its events wait for the next run, in order
    handled = 0
    for event, connection in rows:
        if connection.id not in accounts:
            continue
        follower_id = str(event.payload.get("follower_id"))
        if event.kind == EventKind.FOLLOWED:
            customer_id, how = customers.get((connection.id, follower_id), (None, ""))
            await _consent(
                session, connection, customer_id, granted=True, evidence=f"followed {connection.name!r}{how}"
            )
        elif event.kind == EventKind.UNFOLLOWED:
            customer_id = await _known(session, connection, follower_id)
            await _consent(
                session, connection, customer_id, granted=False, evidence=f"unfollowed {connection.name!r}"
            )
        event.processed_at = now
        handled += 1
    await session.flush()
    return handled


async def _customers(
    session: AsyncSession, vault: Vault, platforms: Platforms, connection: Connection, follower_ids: list[str]
) -> dict[tuple[uuid.UUID, str], tuple[uuid.UUID | None, str]]:
    """The customer of each follower still following (identity resolution, in one go), and how
    they came."""
    if not follower_ids:
        return {}
    plugin = service.connector(connection.connector)
    assert isinstance(plugin, FollowerSource)
    wanted = list(dict.fromkeys(follower_ids))
    found = await service.call_platform(
        session, vault, platforms, connection,
        lambda client, config, grant: plugin.fetch_followers(client, config, grant, wanted),
    )  # fmt: skip
    following: list[Follower] = []
    buyers = []
    for follower in found:
        if not follower.following:
            continue  # gone again before we asked: their unfollow event follows
        try:
            buyers.append(buyer_of(connection.connector, service.buyer_input(follower.buyer)))
        except InvalidInput as error:  # an id no identity can hold: nothing will make it one
            log.warning("follower id refused", connection=str(connection.id), error=str(error)[:200])
            continue
        following.append(follower)
    resolved = await resolve_buyers(session, buyers)
    return {
        (connection.id, f.follower_id): (customer_id, _how(f))
        for f, customer_id in zip(following, resolved, strict=True)
    }


def _how(follower: Follower) -> str:
    """How and when they came, for the consent's evidence."""
    scene = f" from {follower.source}" if follower.source else ""
    return scene + (f" at {follower.followed_at:%Y-%m-%d %H:%M} UTC" if follower.followed_at else "")


async def _known(session: AsyncSession, connection: Connection, follower_id: str) -> uuid.UUID | None:
    try:
        (identity,) = buyer_of(connection.connector, BuyerInput(buyer_id=follower_id)).identities
    except InvalidInput:
        return None
    return await session.scalar(
        select(CustomerIdentity.customer_id).where(
            CustomerIdentity.kind == identity.kind, CustomerIdentity.value == identity.value
        )
    )


async def _consent(
    session: AsyncSession,
    connection: Connection,
    customer_id: uuid.UUID | None,
    *,
    granted: bool,
    evidence: str,
) -> None:
    """Grant (following) or withdraw (unfollowing) the channel's marketing and surveys."""
    if customer_id is None:
        return  # not following any more, never known here, or blocked or erased
    for purpose in PURPOSES:
        await record_consent(
            session, customer_id, channel=connection.connector, purpose=purpose, granted=granted,
            source=f"{connection.connector}:{'follow' if granted else 'unfollow'}", evidence=evidence[:500],
            actor=f"connector:{connection.connector}",
        )  # fmt: skip
