"""How invitations reach customers. Link delivery is built in: the link is returned for the tenant
to send, and counts as delivered when it is handed over. A channel with a registered Delivery
(the WeChat connector's template messages) sends it itself and says whether it went out; one
that failed for a passing reason sets `delivery_retry_at`, and the job `nps.redeliver` tries
again then."""

from __future__ import annotations

from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from brandloop.nps.models import Invitation


class Delivery(Protocol):
    async def deliver(self, session: AsyncSession, invitation: Invitation, link: str) -> bool:
        """Send the link to the invitation's customer; True when the channel accepted it. When
        not, say why (`delivery_error`) and, for a passing reason, when to try again
        (`delivery_retry_at`)."""
        ...


_deliveries: dict[str, Delivery] = {}


def register(channel: str, delivery: Delivery) -> None:
    _deliveries[channel] = delivery


def unregister(channel: str) -> None:
    _deliveries.pop(channel, None)


def for_channel(channel: str) -> Delivery | None:
    """The channel's delivery; None for link delivery."""
    return _deliveries.get(channel)
