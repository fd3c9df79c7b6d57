"""Webhook ingress: believed only when signed, stored once per event, each tenant's to its own."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import httpx
from connections_support import create
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from brandloop.db.session import platform_transaction
from brandloop.graphql.relay import pk_of
from support import GraphQLClient, Tenant


def signed(body: bytes, secret: bytes = b"s3cret-value") -> dict[str, str]:
    return {
        "x-signature": hmac.new(secret, body, hashlib.sha256).hexdigest(),
        "content-type": "application/json",
    }


async def test_a_signed_delivery_is_stored_once(
    site: Path, engine: AsyncEngine, gql: GraphQLClient, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    connection = (await create(gql, tenant))["connection"]
    assert isinstance(connection, dict)
    pk = pk_of(str(connection["id"]), "ChannelConnection")
    path = f"/webhooks/example/{pk}"
    body = json.dumps({"id": "evt-1", "type": "order.updated", "data": {"order": "O-1"}}).encode()
    first = await client.post(path, content=body, headers=signed(body))
    assert first.status_code == 200 and first.json() == {"received": True, "new": 1}
    again = await client.post(path, content=body, headers=signed(body))  # the platform retries
    assert again.json() == {"received": True, "new": 0}
    forged = await client.post(path, content=body.replace(b"O-1", b"O-2"), headers=signed(body))
    assert forged.status_code == 401 and forged.json()["error"]["code"] == "BAD_SIGNATURE"
    wrong_key = await client.post(path, content=body, headers=signed(body, b"not-the-secret"))
    assert wrong_key.status_code == 401
    assert (await client.post(f"/webhooks/other/{pk}", content=body, headers=signed(body))).status_code == 404
    assert (
        await client.post("/webhooks/example/not-an-id", content=body, headers=signed(body))
    ).status_code == 404
    garbage = b"not json"
    assert (await client.post(path, content=garbage, headers=signed(garbage))).status_code == 400
    async with platform_transaction(engine) as session:
        stored = (
            await session.execute(
                text("SELECT tenant_id, key, kind, payload FROM webhook_events WHERE connection_id = :c"),
                {"c": pk},
            )
        ).all()
    assert [(r.tenant_id, r.key, r.kind, r.payload) for r in stored] == [
        (tenant.id, "evt-1", "order", {"id": "evt-1", "type": "order.updated", "data": {"order": "O-1"}})
    ]


async def test_an_oversized_delivery_is_refused_unread(
    site: Path, gql: GraphQLClient, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    connection = (await create(gql, tenant))["connection"]
    assert isinstance(connection, dict)
    pk = pk_of(str(connection["id"]), "ChannelConnection")
    huge = b"x" * 1_000_001
    refused = await client.post(f"/webhooks/example/{pk}", content=huge, headers=signed(huge))
    assert refused.status_code == 413 and refused.json()["error"]["code"] == "TOO_LARGE"
