"""The TikTok Shop connector against TikTok Shop's published signing example and a faithful local
TikTok Shop; and, across the whole flow, no secret in any API response or log line."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from connections_support import authorize_through, drain, serving, stored_orders
from sqlalchemy.ext.asyncio import AsyncEngine

from brandloop.connectors import EventKind
from brandloop.graphql.relay import pk_of
from brandloop.jobs import worker
from brandloop.settings import Settings
from brandloop_plugins.tiktok_shop import TikTokShopConnector
from brandloop_plugins.tiktok_shop.connector import TikTokShopConfig, sign, webhook_signature
from brandloop_plugins.tiktok_shop.standin import TikTokShopStandIn, sample_orders
from support import GraphQLClient, Tenant

APP_KEY, APP_SECRET = "6a1b2c3d4e5f6", "tts-app-secret-of-the-stand-in"
CATCH_UP = next(job for job in worker.JOBS if job.name == "connections.catch_up")
CREATE = """mutation($input: CreateConnectionInput!) { createConnection(input: $input) {
  connection { id webhookUrl } userErrors { field code } } }"""
EVERYTHING = """{ connections { edges { node { id connector name status config secretsSet authorizedAt
  webhookUrl syncRequestedAt sync { syncedUntil lagSeconds failures lastError lastSuccessAt recordsIn
  nextRunAt } } } } }"""


def test_signing_matches_tiktok_shops_published_example() -> None:
    # "Sign your API request": Get Authorized Shops with app_key 29a39d at 1623812664, secret e59af819cc.
    params = {"app_key": "29a39d", "timestamp": "1623812664", "sign": "ignored", "access_token": "ignored"}
    expected = "b596b73e0cc6de07ac26f036364178ab16b0a907af13d43f0a0cd2345f582dc8"
    assert sign("e59af819cc", "/authorization/202309/shops", params) == expected
    # The raw body is signed too, byte for byte.
    assert sign("s", "/p", {"a": 1}, b'{"x":1}') != sign("s", "/p", {"a": 1}, b'{"x": 1}')


def test_webhooks_are_believed_only_when_signed_and_fresh() -> None:
    tiktok = TikTokShopConnector()
    config = TikTokShopConfig(app_key="ak", app_secret="as")
    message = {"type": 1, "tts_notification_id": "n1", "shop_id": "7", "timestamp": int(time.time()),
               "data": {"order_id": "576", "order_status": "AWAITING_SHIPMENT"}}  # fmt: skip
    body = json.dumps(message).encode()
    good = {"authorization": webhook_signature("ak", "as", body)}
    assert tiktok.verify_webhook(config, url="", headers=good, body=body)
    assert not tiktok.verify_webhook(config, url="", headers=good, body=body.replace(b"576", b"577"))
    assert not tiktok.verify_webhook(
        config, url="", headers={"authorization": webhook_signature("ak", "x", body)}, body=body
    )
    stale = json.dumps({**message, "timestamp": int(time.time()) - 7200}).encode()
    assert not tiktok.verify_webhook(
        config, url="", headers={"authorization": webhook_signature("ak", "as", stale)}, body=stale
    )
    (event,) = tiktok.parse_webhook(config, body)
    assert (event.key, event.kind) == ("n1", EventKind.ORDER)
    deauth = tiktok.parse_webhook(
        config, json.dumps({**message, "type": 6, "tts_notification_id": "n2"}).encode()
    )
    assert deauth[0].kind == EventKind.AUTHORIZATION_REVOKED
    with pytest.raises(ValueError):
        tiktok.parse_webhook(config, b"[]")


async def test_a_shop_connects_syncs_and_follows_webhooks_without_leaking_a_secret(
    engine: AsyncEngine,
    settings: Settings,
    gql: GraphQLClient,
    client: httpx.AsyncClient,
    tenant: Tenant,
    other_tenant: Tenant,
    every_log_line: Any,
) -> None:
    orders = sample_orders(1000, start=datetime.now(UTC) - timedelta(hours=12))
    tiktok = TikTokShopStandIn(APP_KEY, APP_SECRET, orders=orders, failure_rate=0.05)
    answers: list[Any] = []
    async with serving(tiktok.app) as url:
        config = {"app_key": APP_KEY, "app_secret": APP_SECRET, "api_base_url": url, "auth_base_url": url}
        created = await gql.data(
            tenant.key, CREATE, {"input": {"connector": "tiktok_shop", "name": "US shop", "config": config}}
        )
        answers.append(created)
        connection = created["createConnection"]["connection"]
        pk = pk_of(connection["id"], "ChannelConnection")
        back = await authorize_through(gql, client, tenant, connection["id"])
        assert back.status_code == 200, back.text
        answers.append(back.json())
        await drain(engine, settings, tenant.id, pk)
        assert len(await stored_orders(engine, tenant.id, "tiktok_shop")) == 1000
        # The week runs out: the next pull refreshes the token once and goes on.
        tiktok.expire_access_tokens()
        spent = set(tiktok.access)
        tiktok.orders.append({**orders[-1], "id": "576900000000LATE", "update_time": int(time.time()) - 1})
        await drain(engine, settings, tenant.id, pk)
        assert "576900000000LATE" in {r[0] for r in await stored_orders(engine, tenant.id, "tiktok_shop")}
        assert set(tiktok.access) - spent  # a new access token was issued and used
        # A webhook delivered three times is one event; forged and replayed ones are refused.
        path = httpx.URL(connection["webhookUrl"]).path
        message = {"type": 1, "tts_notification_id": "7301", "shop_id": "7000000000000001",
                   "timestamp": int(time.time()), "data": {"order_id": orders[0]["id"], "order_status": "COMPLETED"}}  # fmt: skip
        body, headers = tiktok.webhook(message)
        delivered = [(await client.post(path, content=body, headers=headers)).json() for _ in range(3)]
        assert [d["new"] for d in delivered] == [1, 0, 0]
        forged = await client.post(path, content=body, headers={**headers, "authorization": "f" * 64})
        old_body, old_headers = tiktok.webhook(
            {**message, "tts_notification_id": "7302", "timestamp": int(time.time()) - 7200}
        )
        replayed = await client.post(path, content=old_body, headers=old_headers)
        assert (forged.status_code, replayed.status_code) == (401, 401)
        # Another tenant's key cannot see or use the connection.
        foreign = await gql.raw(other_tenant.key, EVERYTHING)
        assert foreign.json()["data"]["connections"]["edges"] == []
        await worker.run_tenant_job(engine, settings, CATCH_UP, tenant.id)
        answers.append(await gql.data(tenant.key, EVERYTHING))
    node = answers[-1]["connections"]["edges"][0]["node"]
    assert (
        node["status"] == "ACTIVE"
        and node["secretsSet"] == ["app_secret"]
        and node["sync"]["recordsIn"] >= 1001
    )
    assert node["config"]["shop_cipher"] is None  # the cipher found at authorization stays with the grant
    secrets = {APP_SECRET, *tiktok.access, *tiktok.refresh_tokens}
    shown, logged = json.dumps(answers), every_log_line()
    assert "/connectors/callback" in logged and "stamina.retry_scheduled" in logged  # it did capture
    leaked = [s for s in secrets if s in shown or s in logged]
    assert leaked == []
