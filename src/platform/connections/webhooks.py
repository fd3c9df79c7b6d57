"""Webhook ingress: a platform's delivery to /webhooks/{connector}/{connection}.

The connection is found before its tenant is known through a policy that shows one row by id
(as API keys are found by prefix); its tenant is then entered, the connector checks the
platform's signature, and only then are the events believed: stored once each by their key, so a
re-delivery stores nothing new. The job `connections.catch_up` follows them within a minute.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from brandloop.connections import service
from brandloop.connections.models import Connection, ConnectionStatus, WebhookEvent
from brandloop.connections.vault import Vault
from brandloop.connectors import EventKind, PushHandshake
from brandloop.db.base import uuid7
from brandloop.db.session import APP_ROLE, entered_tenant, new_session

MAX_EVENTS = 500

_FIND = text(
    f"""
    SELECT set_config('role', '{APP_ROLE}', true), set_config('app.webhook_connection', :id, true)
    """
)
_TENANT = text("SELECT tenant_id, connector FROM connections WHERE id = CAST(:id AS uuid)")
_ENTER = text(
    "SELECT set_config('app.tenant_id', :tenant, true), set_config('app.webhook_connection', '', true)"
)


class Refused(Exception):
    """Why a delivery is not accepted: NOT_FOUND, DISABLED, BAD_SIGNATURE (forged or stale),
    MALFORMED."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True, slots=True)
class Received:
    new: int
    """How many of the delivery's events were not stored before."""
    answer: str | None
    """What the platform expects back (PushHandshake); None: the JSON summary."""


async def _entered(session: AsyncSession, connector_key: str, connection_id: uuid.UUID) -> Connection:
    """The connection named in the address, its tenant entered; Refused when there is none."""
    await session.execute(_FIND, {"id": str(connection_id)})
    found = (await session.execute(_TENANT, {"id": str(connection_id)})).first()
    if found is None or found.connector != connector_key:
        raise Refused("NOT_FOUND")
    await session.execute(_ENTER, {"tenant": str(found.tenant_id)})
    entered_tenant(session, found.tenant_id)
    connection = await session.get(Connection, (found.tenant_id, connection_id))
    assert connection is not None
    if connection.status == ConnectionStatus.DISABLED:
        raise Refused("DISABLED")
    return connection


async def answer_challenge(
    engine: AsyncEngine, vault: Vault, *, connector_key: str, connection_id: uuid.UUID, url: str
) -> str:
    """The answer to a platform's check of a connection's push address (WeChat's signed GET)."""
    async with new_session(engine) as session, session.begin():
        connection = await _entered(session, connector_key, connection_id)
        plugin = service.connector(connection.connector)
        if not isinstance(plugin, PushHandshake):
            raise Refused("NOT_FOUND")
        answer = plugin.answer_challenge(service.configuration(vault, connection), url=url)
        if answer is None:
            raise Refused("BAD_SIGNATURE")
        return answer


async def receive(
    engine: AsyncEngine,
    vault: Vault,
    *,
    connector_key: str,
    connection_id: uuid.UUID,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
) -> Received:
    """Verify and store one delivery."""
    async with new_session(engine) as session, session.begin():
        connection = await _entered(session, connector_key, connection_id)
        plugin = service.connector(connection.connector)
        config = service.configuration(vault, connection)
        if not plugin.verify_webhook(config, url=url, headers=headers, body=body):
            raise Refused("BAD_SIGNATURE")
        try:
            events = list(plugin.parse_webhook(config, body))[:MAX_EVENTS]
        except (ValueError, KeyError, TypeError) as error:
            raise Refused("MALFORMED") from error
        answer = plugin.acknowledge(config, url=url, body=body) if isinstance(plugin, PushHandshake) else None
        if not events:
            return Received(0, answer)
        rows = [
            {
                "tenant_id": connection.tenant_id,
                "id": uuid7(),
                "connection_id": connection_id,
                "key": e.key[:200],
                "kind": str(EventKind(e.kind)),
                "payload": dict(e.payload),
            }
            for e in events
        ]
        stored = await session.scalars(
            pg_insert(WebhookEvent).values(rows).on_conflict_do_nothing().returning(WebhookEvent.id)
        )
        return Received(len(list(stored)), answer)
