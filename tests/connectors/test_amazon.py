"""The Amazon connector against a faithful local Selling Partner API and Login with Amazon."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from connections_support import drain, kill_and_finish, serving, stored_orders
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from brandloop.connections import platforms
from brandloop.connections.models import Checkpoint
from brandloop.connections.platforms import RetryPolicy, limiter
from brandloop.connectors import PlatformError, TokenExpired, minor_units
from brandloop.db.session import tenant_transaction
from brandloop.graphql.relay import pk_of
from brandloop.jobs import worker
from brandloop.settings import Settings
from brandloop_plugins.amazon import AmazonConfig, AmazonConnector
from brandloop_plugins.amazon.connector import _checked
from brandloop_plugins.amazon.standin import MARKETPLACE, AmazonStandIn, sample_orders
from support import GraphQLClient, Tenant

CLIENT_ID, CLIENT_SECRET, REFRESH = (
    "amzn1.application-oa2-client.t1",
    "lwa-secret-stand-in",
    "Atzr|seller-grant-1",
)
SYNC = next(job for job in worker.JOBS if job.name == "connections.sync")
CREATE = """mutation($input: CreateConnectionInput!) { createConnection(input: $input) {
  connection { id webhookUrl config } userErrors { field code } } }"""
START = """mutation($id: ID!) { startAuthorization(input: {id: $id}) {
  url connection { status } userErrors { field code message } } }"""
HEALTH = """{ connections { edges { node { status config sync { recordsIn failures lastError } } } } }"""


def amazon(orders: list[dict[str, Any]], **given: Any) -> AmazonStandIn:
    return AmazonStandIn(CLIENT_ID, CLIENT_SECRET, REFRESH, orders=orders, **given)


async def connect(
    gql: GraphQLClient,
    tenant: Tenant,
    base_url: str,
    *,
    secret: str = CLIENT_SECRET,
    restricted: bool = False,
) -> dict[str, Any]:
    config = {
        "lwa_client_id": CLIENT_ID, "lwa_client_secret": secret, "refresh_token": REFRESH, "region": "na",
        "marketplace_ids": [MARKETPLACE], "restricted_data": restricted, "api_base_url": base_url,
        "lwa_token_url": f"{base_url}/auth/o2/token",
    }  # fmt: skip
    created = await gql.data(
        tenant.key, CREATE, {"input": {"connector": "amazon", "name": "US store", "config": config}}
    )
    connection = created["createConnection"]["connection"]
    started = (await gql.data(tenant.key, START, {"id": connection["id"]}))["startAuthorization"]
    return {**connection, **started, "pk": pk_of(connection["id"], "ChannelConnection")}


def test_requests_take_their_operations_quota_and_orders_read_amazons_shapes() -> None:
    connector = AmazonConnector()
    quota = lambda path: connector.quota(httpx.Request("GET", f"https://x{path}"))  # noqa: E731
    assert (quota("/orders/v0/orders").operation, quota("/orders/v0/orders").rate) == ("getOrders", 0.0167)
    assert quota("/orders/v0/orders/113-1/orderItems").operation == "getOrderItems"
    assert quota("/auth/o2/token") is None
    config = AmazonConfig(lwa_client_id="c", lwa_client_secret="s", refresh_token="r", region="eu",
                          marketplace_ids=["A1PA6795UKMFR9"], sandbox=True)  # fmt: skip
    assert config.host == "https://sandbox.sellingpartnerapi-eu.amazon.com"
    (order,) = sample_orders(1, start=datetime(2026, 11, 1, tzinfo=UTC), seed=4)
    record = connector._order(order, order["items"])
    assert record.ship_region == "US-WA" and record.buyer is not None
    assert record.buyer.buyer_id is not None and record.buyer.buyer_id.endswith("@marketplace.amazon.com")
    assert record.total == minor_units(order["OrderTotal"]["Amount"], "USD")
    first = order["items"][0]
    assert record.lines[0].unit_price * first["QuantityOrdered"] == pytest.approx(
        minor_units(first["ItemPrice"]["Amount"], "USD"), abs=first["QuantityOrdered"]
    )  # ItemPrice is for the quantity ordered
    del order["BuyerInfo"]  # without a Restricted Data Token
    assert connector._order(order, order["items"]).buyer is None
    request = httpx.Request("GET", "https://x/orders/v0/orders")
    with pytest.raises(PlatformError):  # a proxy's error page is not Amazon's answer
        _checked(httpx.Response(403, text="<html>denied</html>", request=request))
    with pytest.raises(TokenExpired):
        _checked(
            httpx.Response(
                403,
                json={
                    "errors": [
                        {"code": "Unauthorized", "message": "The access token you provided has expired."}
                    ]
                },
                request=request,
            )
        )


async def test_a_store_connects_with_its_credentials_and_syncs_each_order_once(
    engine: AsyncEngine, settings: Settings, gql: GraphQLClient, client: httpx.AsyncClient, tenant: Tenant,
    other_tenant: Tenant, every_log_line: Any,
) -> None:  # fmt: skip
    orders = sample_orders(1000, start=datetime.now(UTC) - timedelta(hours=12))
    store = amazon(orders)
    async with serving(store.app) as url:
        refused = await connect(gql, tenant, url, secret="wrong")
        assert refused["url"] is None and refused["connection"] is None
        assert refused["userErrors"][0]["code"] == "PLATFORM_REFUSED"
        assert "invalid_client" in refused["userErrors"][0]["message"]
        connection = await connect(gql, other_tenant, url)
        assert connection["connection"] == {"status": "ACTIVE"} and connection["userErrors"] == []
        await drain(engine, settings, other_tenant.id, connection["pk"])
        first = await stored_orders(engine, other_tenant.id, "amazon")
        await drain(engine, settings, other_tenant.id, connection["pk"])  # a later run finds nothing new
        hook = httpx.URL(connection["webhookUrl"]).path
        forged = await client.post(hook, content=b'{"NotificationType": "ORDER_CHANGE"}')
    assert len(first) == 1000 and {r[0] for r in first} == {o["AmazonOrderId"] for o in orders}
    assert sum(int(str(r[3])) for r in first) == sum(
        minor_units(o["OrderTotal"]["Amount"], "USD") for o in orders
    )
    assert await stored_orders(engine, other_tenant.id, "amazon") == first
    assert await stored_orders(engine, tenant.id, "amazon") == []  # nothing leaks to another tenant
    # Without the restricted role no buyer information came: orders, no customers.
    assert {r[7] for r in first} == {0}
    assert forged.status_code == 401  # Amazon notifies through SQS: nothing posted here is believed
    health = (await gql.data(other_tenant.key, HEALTH))["connections"]["edges"][0]["node"]
    assert health["status"] == "ACTIVE" and health["sync"]["failures"] == 0
    assert "lwa_client_secret" not in health["config"] and "refresh_token" not in health["config"]
    logged = every_log_line()
    assert [s for s in {CLIENT_SECRET, REFRESH, *store.access} if s in logged] == []


async def test_buyers_come_with_a_restricted_data_token_as_amazon_buyer_identities(
    engine: AsyncEngine, settings: Settings, gql: GraphQLClient, tenant: Tenant
) -> None:
    orders = sample_orders(60, start=datetime.now(UTC) - timedelta(hours=2), seed=2)
    store = amazon(orders, restricted_role=True)
    async with serving(store.app) as url:
        connection = await connect(gql, tenant, url, restricted=True)
        await drain(engine, settings, tenant.id, connection["pk"])
    assert "rdt" in store.calls
    async with tenant_transaction(engine, tenant.id) as session:
        found = await session.execute(
            text("SELECT kind, count(DISTINCT value) FROM customer_identities GROUP BY kind")
        )
        regions = await session.scalars(text("SELECT DISTINCT ship_region FROM orders"))
        assert dict(found.all()) == {"amazon_buyer": len({o["BuyerInfo"]["BuyerEmail"] for o in orders})}
        assert list(regions) == ["US-WA"]


async def test_throttling_failures_and_expired_tokens_are_ridden_out_at_amazons_pace(
    engine: AsyncEngine,
    settings: Settings,
    gql: GraphQLClient,
    tenant: Tenant,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(platforms, "DEFAULT_POLICY", RetryPolicy(wait_initial=0.05, wait_max=0.3))
    orders = sample_orders(150, start=datetime.now(UTC) - timedelta(hours=3), seed=5)
    # Amazon's bursts, faster rates (the account's own, stated in every answer); 15% fail.
    store = amazon(orders, failure_rate=0.15, seed=8,
                   rates={"getOrders": (5.0, 20), "getOrderItems": (100.0, 30), "rdt": (1.0, 10)})  # fmt: skip
    answered: list[int] = []
    original = store._call

    def counting(request: Any, operation: str) -> Any:
        refused, token = original(request, operation)
        answered.append(refused.status_code if refused is not None else 200)
        if len(answered) == 60:
            store.expire_access_tokens()  # the hour runs out in the middle of the sync
        return refused, token

    store._call = counting  # type: ignore[method-assign]
    async with serving(store.app) as url:
        connection = await connect(gql, tenant, url)
        await drain(engine, settings, tenant.id, connection["pk"])
    assert len(await stored_orders(engine, tenant.id, "amazon")) == 150
    assert 500 in answered and 403 in answered  # failures, the expired token
    assert answered.count(429) < 10  # paced to the stated rates, the buckets were rarely empty
    learned = limiter((connection["pk"], "getOrderItems"), 0.5, 30)
    assert learned.max_rate / learned.time_period == pytest.approx(100.0)


async def test_a_revoked_refresh_token_stops_the_connection(
    engine: AsyncEngine, settings: Settings, gql: GraphQLClient, tenant: Tenant
) -> None:
    store = amazon(sample_orders(5, start=datetime.now(UTC) - timedelta(hours=1)))
    async with serving(store.app) as url:
        await connect(gql, tenant, url)
        store.expire_access_tokens()
        store.refresh_token = "Atzr|another"  # the seller removed the application's authorization
        await worker.run_tenant_job(engine, settings, SYNC, tenant.id)
        await worker.run_tenant_job(engine, settings, SYNC, tenant.id)  # stopped: not retried
    assert store.calls == []
    listed = (await gql.data(tenant.key, HEALTH))["connections"]["edges"][0]["node"]
    assert listed["status"] == "REVOKED" and "AuthorizationRevoked" in listed["sync"]["lastError"]


async def test_a_worker_killed_at_random_points_ends_with_the_same_data(
    engine: AsyncEngine, settings: Settings, gql: GraphQLClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    orders = sample_orders(600, start=datetime.now(UTC) - timedelta(hours=8), seed=9)
    store = amazon(orders)
    async with serving(store.app) as url:
        killed = await connect(gql, tenant, url)
        steady = await connect(gql, other_tenant, url)
        await drain(engine, settings, other_tenant.id, steady["pk"])
        kills = await kill_and_finish("sync", tenant.id, settings, seed=20261128, kills=4, lines=3)
    assert kills >= 2
    assert await stored_orders(engine, tenant.id, "amazon") == await stored_orders(
        engine, other_tenant.id, "amazon"
    )
    async with tenant_transaction(engine, tenant.id) as session:
        checkpoint = await session.get(Checkpoint, (tenant.id, killed["pk"], "orders"))
    assert checkpoint is not None and checkpoint.cursor is None and checkpoint.failures == 0


async def test_a_configuration_amazon_would_not_take_is_refused_field_by_field(
    gql: GraphQLClient, tenant: Tenant
) -> None:
    config = {"lwa_client_id": "", "lwa_client_secret": "s", "refresh_token": "Atzr|x", "region": "mars",
              "marketplace_ids": [], "api_base_url": "ftp://example"}  # fmt: skip
    created = await gql.data(
        tenant.key, CREATE, {"input": {"connector": "amazon", "name": "Bad", "config": config}}
    )
    assert created["createConnection"]["connection"] is None
    assert {(e["field"], e["code"]) for e in created["createConnection"]["userErrors"]} == {
        ("config.lwa_client_id", "INVALID_CONFIG"),
        ("config.region", "INVALID_CONFIG"),
        ("config.marketplace_ids", "INVALID_CONFIG"),
        ("config.api_base_url", "INVALID_CONFIG"),
    }
