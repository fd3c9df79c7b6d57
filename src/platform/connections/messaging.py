"""Survey invitations sent through a connector that messages followers (WeChat's template
messages): registered as the NPS delivery of each such channel. The NPS module has already
applied the quiet period and consent (an unfollow withdrew it); here the account's daily quota
holds, and what the platform answers is recorded on the invitation."""

from __future__ import annotations

from datetime import UTC, datetime, time

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from brandloop.connections import service
from brandloop.connections.models import Connection, ConnectionStatus
from brandloop.connections.platforms import Platforms
from brandloop.connections.vault import vault
from brandloop.connectors import Message, MessageSender, PlatformError
from brandloop.customers.identities import CHANNEL_BUYER_KIND, IdentityKind
from brandloop.customers.models import CustomerIdentity
from brandloop.nps import delivery
from brandloop.nps.models import Invitation, Survey
from brandloop.settings import Settings


class ConnectorDelivery:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def deliver(self, session: AsyncSession, invitation: Invitation, link: str) -> bool:
        """Send the link (or, with no account connected, leave it to the tenant as link delivery
        does); False, with the reason on the invitation, when it did not go out."""
        invitation.delivery_error = await self._send(session, invitation, link)
        return invitation.delivery_error is None

    async def _send(self, session: AsyncSession, invitation: Invitation, link: str) -> str | None:
        channel = invitation.channel
        connection = await session.scalar(
            select(Connection)
            .where(Connection.connector == channel, Connection.status == ConnectionStatus.ACTIVE)
            .order_by(Connection.id)
            .limit(1)
        )
        if connection is None:
            return None  # no account connected: link delivery, the tenant sends the link
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
            return f"the customer has no {kind.value}"
        today = datetime.combine(datetime.now(UTC).date(), time(), UTC)
        sent = await session.scalar(
            select(func.count())
            .select_from(Invitation)
            .where(Invitation.channel == channel, Invitation.delivered_at >= today)
        )
        if (sent or 0) >= plugin.daily_messages:
            return f"the account's {plugin.daily_messages} messages a day are spent"
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
            except (httpx.HTTPError, PlatformError) as error:
                return f"{type(error).__name__}: {error}"[:300]
        return None


def register(settings: Settings) -> None:
    """Every installed connector that messages followers delivers its channel's invitations."""
    for key, plugin in service.connectors().items():
        if isinstance(plugin, MessageSender):
            delivery.register(key, ConnectorDelivery(settings))
