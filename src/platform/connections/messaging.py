"""Survey invitations sent through a connector that messages followers (WeChat's template
messages): registered as the NPS delivery of each such channel. The NPS module has already
applied the quiet period and consent (an unfollow withdrew it); here the account's daily quota
holds, and what the platform answers is recorded on the invitation: a passing failure (the
platform down, its quota spent) is tried again by the job `nps.redeliver`, a refusal (the
follower left) is not."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from brandloop.connections import service
from brandloop.connections.models import Connection, ConnectionStatus
from brandloop.connections.platforms import Platforms
from brandloop.connections.vault import vault
from brandloop.connectors import DeliveryRefused, Message, MessageSender, PlatformError, RateLimited
from brandloop.customers.identities import CHANNEL_BUYER_KIND, IdentityKind
from brandloop.customers.models import CustomerIdentity
from brandloop.nps import delivery
from brandloop.nps.models import Invitation, Survey
from brandloop.settings import Settings

RETRY = timedelta(minutes=15)
"""After a passing failure: the next run of the job nps.redeliver."""


class ConnectorDelivery:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def deliver(self, session: AsyncSession, invitation: Invitation, link: str) -> bool:
        """Send the link (or, with no account connected, leave it to the tenant as link delivery
        does); False, with the reason on the invitation, when it did not go out."""
        invitation.delivery_error, invitation.delivery_retry_at = await self._send(session, invitation, link)
        return invitation.delivery_error is None

    async def _send(
        self, session: AsyncSession, invitation: Invitation, link: str
    ) -> tuple[str | None, datetime | None]:
        """Why it did not go out (None: it did) and, for a passing reason, when to try again."""
        channel, now = invitation.channel, datetime.now(UTC)
        connection = await session.scalar(
            select(Connection)
            .where(Connection.connector == channel, Connection.status == ConnectionStatus.ACTIVE)
            .order_by(Connection.id)
            .limit(1)
        )
        if connection is None:
            return None, None  # no account connected: link delivery, the tenant sends the link
        plugin = service.connector(channel)
        assert isinstance(plugin, MessageSender)
        kind = CHANNEL_BUYER_KIND.get(channel, IdentityKind.EXTERNAL)
        recipient = await session.scalar(
            select(CustomerIdentity.value)
            .where(CustomerIdentity.customer_id == invitation.customer_id, CustomerIdentity.kind == kind)
            .order_by(CustomerIdentity.id.desc())
            .limit(1)
        )
        if recipient is None:
            return f"the customer has no {kind.value}", None
        zone = ZoneInfo(plugin.quota_zone)
        today = datetime.combine(now.astimezone(zone).date(), time(), zone)
        sent = await session.scalar(
            select(func.count())
            .select_from(Invitation)
            .where(Invitation.channel == channel, Invitation.delivered_at >= today)
        )
        if (sent or 0) >= plugin.daily_messages:
            return f"the account's {plugin.daily_messages} messages a day are spent", today + timedelta(
                days=1
            )
        survey = await session.get(Survey, (invitation.tenant_id, invitation.survey_id))
        assert survey is not None
        question = survey.question.get("zh-CN") or next(iter(survey.question.values()), "")
        message = Message(recipient_id=recipient, title=survey.name, body=question, link=link)
        async with Platforms() as platforms:
            try:
                await service.call_platform(
                    session, vault(self.settings), platforms, connection,
                    lambda client, config, grant: plugin.send(client, config, grant, message),
                )  # fmt: skip
            except DeliveryRefused as error:
                return f"{type(error).__name__}: {error}"[:300], None
            except RateLimited as error:
                return f"{type(error).__name__}: {error}"[:300], now + timedelta(
                    seconds=error.retry_after or 0
                ) + RETRY
            except (httpx.HTTPError, PlatformError) as error:
                return f"{type(error).__name__}: {error}"[:300], now + RETRY
        return None, None


def register(settings: Settings) -> None:
    """Every installed connector that messages followers delivers its channel's invitations."""
    for key, plugin in service.connectors().items():
        if isinstance(plugin, MessageSender):
            delivery.register(key, ConnectorDelivery(settings))
