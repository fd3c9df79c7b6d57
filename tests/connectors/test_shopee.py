"""The Shopee connector against Shopee's published signing rules and a faithful local Shopee."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from connections_support import authorize_through, drain, kill_and_finish, serving, stored_orders
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from brandloop.connections import platforms, service
from brandloop.connections.models import Checkpoint, Connection
from brandloop.connections.platforms import RetryPolicy
from brandloop.connections.vault import vault
from brandloop.connectors import EventKind, minor_units
from brandloop.db.session import tenant_transaction
from brandloop.graphql.relay import pk_of
from brandloop.jobs import worker
from brandloop.settings import Settings
from brandloop_plugins.shopee import ShopeeConnector
from brandloop_plugins.shopee.connector import ShopeeConfig, base_string, sign
from brandloop_plugins.shopee.standin import ShopeeStandIn, sample_orders
from support import GraphQLClient, Tenant

PARTNER_ID, PARTNER_KEY, SHOP_ID = 2001887, "4a6f686e-partner-key-stand-in", 220011
CATCH_UP = next(job for job in worker.JOBS if job.name == "connections.catch_up")
SYNC = next(job for job in worker.JOBS if job.name == "connections.sync")
CREATE = """mutation($input: CreateConnectionInput!) { createConnection(input: $input) {
  connection { id webhookUrl } userErrors { field code } } }"""
HEALTH = (
    """{ connections { edges { node { status sync { recordsIn lagSeconds lastSuccessAt failures } } } } }"""
)


def test_base_strings_follow_shopees_published_order() -> None:
    # Shopee's authorization guide: partner_id 10090, /api/v2/shop/auth_partner, 1594897040.
    assert (
        base_string(10090, "/api/v2/shop/auth_partner", 1594897040)
        == "10090/api/v2/shop/auth_partner1594897040"
    )
    # A shop's call adds access_token and shop_id, in that order; the sign is lower-case hex HMAC-SHA256.
    parts = (2001887, "/api/v2/order/get_order_list", 1655714431, "at-1", 220011)
    assert base_string(*parts) == "2001887/api/v2/order/get_order_list1655714431at-1220011"
    expected = hmac.new(b"key", base_string(*parts).encode(), hashlib.sha256).hexdigest()
    assert sign("key", *parts) == expected and expected == expected.lower() and len(expected) == 64


def test_the_authorization_link_has_shopees_shape() -> None:
    config = ShopeeConfig(partner_id=10090, partner_key="k", api_base_url="https://partner.shopeemobile.com")
    url = httpx.URL(ShopeeConnector().authorize_url(config, redirect_uri="https://b.example/cb", state="s1"))
    assert (url.host, url.path) == ("partner.shopeemobile.com", "/api/v2/shop/auth_partner")
    assert set(url.params) == {"partner_id", "timestamp", "sign", "redirect"}
    timestamp = int(url.params["timestamp"])
    assert abs(timestamp - time.time()) < 5
    assert url.params["sign"] == sign("k", 10090, "/api/v2/shop/auth_partner", timestamp)
    assert url.params["redirect"] == "https://b.example/cb?state=s1"


def test_push_messages_are_believed_only_when_signed_and_fresh() -> None:
    shopee = ShopeeConnector()
    config = ShopeeConfig(partner_id=1, partner_key="pk", push_partner_key="push-key")
    url = "https://brand.example/webhooks/shopee/1"
    message = {
        "shop_id": 1,
        "code": 3,
        "timestamp": int(time.time()),
        "data": {"ordersn": "X1", "status": "SHIPPED"},
    }
    body = json.dumps(message).encode()
    signed = hmac.new(b"push-key", url.encode() + b"|" + body, hashlib.sha256).hexdigest()
    assert shopee.verify_webhook(config, url=url, headers={"authorization": signed}, body=body)
    assert not shopee.verify_webhook(config, url=url + "x", headers={"authorization": signed}, body=body)
    assert not shopee.verify_webhook(config, url=url, headers={"authorization": signed}, body=body + b" ")
    partner_signed = hmac.new(b"pk", url.encode() + b"|" + body, hashlib.sha256).hexdigest()
    assert not shopee.verify_webhook(config, url=url, headers={"authorization": partner_signed}, body=body)
    old = json.dumps({**message, "timestamp": int(time.time()) - 7200}).encode()
    old_signed = hmac.new(b"push-key", url.encode() + b"|" + old, hashlib.sha256).hexdigest()
    assert not shopee.verify_webhook(config, url=url, headers={"authorization": old_signed}, body=old)
    (event,) = shopee.parse_webhook(config, body)
    assert event.kind == EventKind.ORDER and event.payload["data"]["ordersn"] == "X1"
    revoked = shopee.parse_webhook(config, json.dumps({"code": 2, "timestamp": 1, "data": {}}).encode())
    assert revoked[0].kind == EventKind.AUTHORIZATION_REVOKED


async def connect(
    gql: GraphQLClient, client: httpx.AsyncClient, tenant: Tenant, base_url: str, name: str = "SG shop"
) -> dict[str, Any]:
    config = {
        "partner_id": PARTNER_ID,
        "partner_key": PARTNER_KEY,
        "shop_id": SHOP_ID,
        "api_base_url": base_url,
    }
    created = await gql.data(
        tenant.key, CREATE, {"input": {"connector": "shopee", "name": name, "config": config}}
    )
    connection = created["createConnection"]["connection"]
    back = await authorize_through(gql, client, tenant, connection["id"])
    assert back.status_code == 200 and back.json()["connected"] is True, back.text
    return {**connection, "pk": pk_of(connection["id"], "ChannelConnection")}


async def test_a_shop_with_thousands_of_orders_syncs_each_exactly_once(
    engine: AsyncEngine,
    settings: Settings,
    gql: GraphQLClient,
    client: httpx.AsyncClient,
    tenant: Tenant,
    other_tenant: Tenant,
) -> None:
    orders = sample_orders(3000, start=datetime.now(UTC) - timedelta(hours=32))
    shopee = ShopeeStandIn(PARTNER_ID, PARTNER_KEY, SHOP_ID, orders=orders)
    async with serving(shopee.app) as url:
        connection = await connect(gql, client, tenant, url)
        await drain(engine, settings, tenant.id, connection["pk"])
        first = await stored_orders(engine, tenant.id, "shopee")
        await drain(engine, settings, tenant.id, connection["pk"])  # a later run finds nothing new
    assert len(first) == 3000 and {r[0] for r in first} == {o["order_sn"] for o in orders}
    assert sum(int(str(r[3])) for r in first) == sum(minor_units(o["total_amount"], "SGD") for o in orders)
    assert await stored_orders(engine, tenant.id, "shopee") == first
    assert await stored_orders(engine, other_tenant.id, "shopee") == []  # nothing leaks to another tenant
    health = (await gql.data(tenant.key, HEALTH))["connections"]["edges"][0]["node"]
    assert health["status"] == "ACTIVE" and health["sync"]["recordsIn"] >= 3000
    assert health["sync"]["failures"] == 0 and health["sync"]["lagSeconds"] < 600


async def test_throttling_failures_and_an_expired_token_are_ridden_out(
    engine: AsyncEngine,
    settings: Settings,
    gql: GraphQLClient,
    client: httpx.AsyncClient,
    tenant: Tenant,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Waits long enough to reach the stand-in's next second, whose quota is fresh.
    monkeypatch.setattr(platforms, "DEFAULT_POLICY", RetryPolicy(wait_initial=0.3, wait_max=1.0))
    orders = sample_orders(200, start=datetime.now(UTC) - timedelta(hours=3), seed=3)
    shopee = ShopeeStandIn(
        PARTNER_ID, PARTNER_KEY, SHOP_ID, orders=orders, failure_rate=0.2, per_second=8, seed=5
    )
    answered: list[int] = []
    original = shopee._shop_call

    def counting(request: Any) -> Any:
        refused = original(request)
        answered.append(refused.status_code if refused is not None else 200)
        if len(answered) == 20:
            shopee.expire_access_tokens()  # the four hours run out in the middle of the sync
        return refused

    shopee._shop_call = counting  # type: ignore[method-assign]
    async with serving(shopee.app) as url:
        connection = await connect(gql, client, tenant, url)
        first_refresh_tokens = set(shopee.refresh_tokens)
        await drain(engine, settings, tenant.id, connection["pk"])
    assert len(await stored_orders(engine, tenant.id, "shopee")) == 200
    assert 500 in answered and 429 in answered and 403 in answered  # failures, throttling, the expired token
    # The refresh token was spent once (Shopee takes each once) and the new grant stored at once.
    assert not first_refresh_tokens & shopee.refresh_tokens and len(shopee.refresh_tokens) == 1
    async with tenant_transaction(engine, tenant.id) as session:
        stored = await session.get(Connection, (tenant.id, connection["pk"]))
        assert stored is not None
        grant = service.grant_of(vault(settings), stored)
    assert grant.refresh_token is not None
    assert {grant.refresh_token.get_secret_value()} == shopee.refresh_tokens


async def test_a_refused_refresh_marks_the_connection_for_authorization(
    engine: AsyncEngine, settings: Settings, gql: GraphQLClient, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    shopee = ShopeeStandIn(PARTNER_ID, PARTNER_KEY, SHOP_ID, orders=sample_orders(5, start=datetime.now(UTC)))
    async with serving(shopee.app) as url:
        connection = await connect(gql, client, tenant, url)
        shopee.expire_access_tokens()
        shopee.refresh_tokens.clear()  # the seller cancelled the authorization on Shopee
        await worker.run_tenant_job(engine, settings, SYNC, tenant.id)
        await worker.run_tenant_job(engine, settings, SYNC, tenant.id)  # stopped: not retried
    assert shopee.calls == []  # no shop call went through
    listed = (await gql.data(tenant.key, HEALTH))["connections"]["edges"][0]["node"]
    assert listed["status"] == "REVOKED" and listed["sync"]["failures"] == 1
    async with tenant_transaction(engine, tenant.id) as session:
        checkpoint = await session.get(Checkpoint, (tenant.id, connection["pk"], "orders"))
    assert checkpoint is not None and "AuthorizationRevoked" in str(checkpoint.last_error)


async def test_pushes_are_verified_stored_once_and_followed(
    engine: AsyncEngine,
    settings: Settings,
    gql: GraphQLClient,
    client: httpx.AsyncClient,
    tenant: Tenant,
    every_log_line: Any,
) -> None:
    start = datetime.now(UTC) - timedelta(hours=2)
    orders = sample_orders(30, start=start)
    shopee = ShopeeStandIn(PARTNER_ID, PARTNER_KEY, SHOP_ID, orders=orders)
    async with serving(shopee.app) as url:
        connection = await connect(gql, client, tenant, url)
        await drain(engine, settings, tenant.id, connection["pk"])
        hook = connection["webhookUrl"]
        path = httpx.URL(hook).path
        # A new order and its push, after the last sync.
        late = {**orders[0], "order_sn": "2611LATE01SG", "update_time": int(time.time())}
        shopee.orders.append(late)
        message = {"shop_id": SHOP_ID, "code": 3, "timestamp": int(time.time()),
                   "data": {"ordersn": late["order_sn"], "status": "READY_TO_SHIP", "update_time": late["update_time"]}}  # fmt: skip
        body, headers = shopee.push(hook, message)
        answers = [await client.post(path, content=body, headers=headers) for _ in range(3)]
        assert [a.json() for a in answers] == [{"received": True, "new": 1}] + [
            {"received": True, "new": 0}
        ] * 2
        forged = await client.post(path, content=body, headers={**headers, "authorization": "0" * 64})
        assert forged.status_code == 401 and forged.json()["error"]["code"] == "BAD_SIGNATURE"
        stale_body, stale_headers = shopee.push(hook, {**message, "timestamp": int(time.time()) - 7200})
        replayed = await client.post(path, content=stale_body, headers=stale_headers)
        assert replayed.status_code == 401
        other_key = await client.post(path, content=body, headers=shopee.push(hook, message, key="wrong")[1])
        assert other_key.status_code == 401
        await asyncio.sleep(1.1)  # the sync covers up to now, which must pass the push's second
        await worker.run_tenant_job(engine, settings, CATCH_UP, tenant.id)
        async with tenant_transaction(engine, tenant.id) as session:
            pending = await session.scalar(
                text("SELECT count(*) FROM webhook_events WHERE processed_at IS NULL")
            )
        assert pending == 0
        assert "2611LATE01SG" in {r[0] for r in await stored_orders(engine, tenant.id, "shopee")}
        # The seller withdraws the authorization: the push stops the connection.
        body, headers = shopee.push(
            hook, {"shop_id": SHOP_ID, "code": 2, "timestamp": int(time.time()), "data": {}}
        )
        assert (await client.post(path, content=body, headers=headers)).json()["new"] == 1
        await worker.run_tenant_job(engine, settings, CATCH_UP, tenant.id)
    listed = (await gql.data(tenant.key, HEALTH))["connections"]["edges"][0]["node"]
    assert listed["status"] == "REVOKED"
    # Shopee puts the access token in the query string: no log line shows it, nor the keys.
    logged = every_log_line()
    assert "/webhooks/{connector}/{connection}" in logged
    assert [s for s in {PARTNER_KEY, *shopee.access, *shopee.refresh_tokens} if s in logged] == []


async def test_a_worker_killed_at_random_points_ends_with_the_same_data(
    engine: AsyncEngine,
    settings: Settings,
    gql: GraphQLClient,
    client: httpx.AsyncClient,
    tenant: Tenant,
    other_tenant: Tenant,
) -> None:
    orders = sample_orders(1500, start=datetime.now(UTC) - timedelta(hours=16), seed=9)
    shopee = ShopeeStandIn(PARTNER_ID, PARTNER_KEY, SHOP_ID, orders=orders)
    async with serving(shopee.app) as url:
        killed = await connect(gql, client, tenant, url)
        steady = await connect(gql, client, other_tenant, url)
        await drain(engine, settings, other_tenant.id, steady["pk"])
        kills = await kill_and_finish("sync", tenant.id, settings, seed=20261127, kills=5)
    assert kills >= 3
    assert len(await stored_orders(engine, tenant.id, "shopee")) == 1500
    assert await stored_orders(engine, tenant.id, "shopee") == await stored_orders(
        engine, other_tenant.id, "shopee"
    )
    async with tenant_transaction(engine, tenant.id) as session:
        checkpoint = await session.get(Checkpoint, (tenant.id, killed["pk"], "orders"))
    assert checkpoint is not None and checkpoint.cursor is None and checkpoint.failures == 0
