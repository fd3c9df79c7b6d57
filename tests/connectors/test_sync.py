"""The sync engine against the example platform on loopback: orders flow in, exactly once,
through a failure in the middle."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from connections_support import FAILURES, LISTINGS, ORDERS, create
from sqlalchemy.ext.asyncio import AsyncEngine

from brandloop.connections import platforms, service, sync
from brandloop.connections.graphql import next_scheduled_sync
from brandloop.connections.models import Checkpoint, Connection
from brandloop.connections.platforms import Platforms
from brandloop.connections.vault import vault
from brandloop.db.session import tenant_transaction
from brandloop.graphql.relay import global_id, pk_of
from brandloop.jobs import worker
from brandloop.settings import Settings
from support import GraphQLClient, Tenant

NOW = datetime.now(UTC)
SYNC = next(job for job in worker.JOBS if job.name == "connections.sync")
CATCH_UP = next(job for job in worker.JOBS if job.name == "connections.catch_up")
LIST = '{ orders(first: 50, filter: {channel: "example"}) { totalCount edges { node { externalId customer { id } } } } }'


def market_order(n: int, days_ago: float) -> dict[str, object]:
    at = (NOW - timedelta(days=days_ago)).isoformat()
    return {
        "id": f"EX-{n}", "status": "paid", "currency": "CNY", "total": 1000 * n, "placed_at": at, "updated_at": at,
        "lines": [{"sku": "S", "name": "Tea", "quantity": 1, "price": 1000 * n}],
        "buyer": {"id": f"buyer-{n % 2}", "name": f"Buyer {n % 2}"},
    }  # fmt: skip


async def connected(
    engine: AsyncEngine, settings: Settings, gql: GraphQLClient, tenant: Tenant, base_url: str
) -> Connection:
    created = await create(
        gql, tenant, config={"base_url": base_url, "app_key": "k1", "app_secret": "s3cret-value"}
    )
    pk = pk_of(str(created["connection"]["id"]), "ChannelConnection")  # type: ignore[index]
    async with tenant_transaction(engine, tenant.id) as session, Platforms() as platforms:
        return await service.complete_authorization(
            session, vault(settings), platforms, pk, code="c0de", params={}
        )


async def test_orders_flow_in_exactly_once_through_a_failure(
    site: Path,
    engine: AsyncEngine,
    settings: Settings,
    gql: GraphQLClient,
    tenant: Tenant,
    market: tuple[str, list[dict[str, object]]],
) -> None:
    ORDERS[:] = [market_order(1, 3.5), market_order(2, 3.4), market_order(3, 3.3), market_order(4, 1)]
    FAILURES.clear()
    FAILURES["2"] = platforms.DEFAULT_POLICY.attempts  # the second page fails more than one run retries
    connection = await connected(engine, settings, gql, tenant, market[0])
    await worker.run_tenant_job(engine, settings, SYNC, tenant.id)
    stored = (await gql.data(tenant.key, LIST))["orders"]
    assert stored["totalCount"] == 2  # the first page is in; the failure stopped that connection's run
    async with tenant_transaction(engine, tenant.id) as session:
        checkpoint = await session.get(Checkpoint, (tenant.id, connection.id, sync.ORDERS))
        assert checkpoint is not None and checkpoint.cursor == "2" and checkpoint.failures == 1
        assert checkpoint.retry_at is not None and checkpoint.last_error is not None
        retry_at = checkpoint.retry_at
    status = await gql.data(
        tenant.key, "{ connections { edges { node { sync { failures nextRunAt lastError } } } } }"
    )
    shown = status["connections"]["edges"][0]["node"]["sync"]
    assert (
        shown["failures"] == 1
        and shown["nextRunAt"] == retry_at.isoformat()
        and "HTTPStatusError" in shown["lastError"]
    )
    await worker.run_tenant_job(engine, settings, SYNC, tenant.id)  # still backing off: nothing
    assert (await gql.data(tenant.key, LIST))["orders"]["totalCount"] == 2
    # After the backoff it resumes at the page that failed, and catches up to now.
    for _ in range(sync.ROUNDS):
        async with tenant_transaction(engine, tenant.id) as session, Platforms() as client:
            if not await sync.sync_round(
                session, vault(settings), client, now=retry_at + timedelta(seconds=1)
            ):
                break
    stored = (await gql.data(tenant.key, LIST))["orders"]
    assert sorted(e["node"]["externalId"] for e in stored["edges"]) == ["EX-1", "EX-2", "EX-3", "EX-4"]
    assert len({e["node"]["customer"]["id"] for e in stored["edges"]}) == 2  # buyers resolved to profiles
    # Nothing new on the platform: another round stores nothing again.
    await worker.run_tenant_job(engine, settings, SYNC, tenant.id)
    assert (await gql.data(tenant.key, LIST))["orders"]["totalCount"] == 4
    async with tenant_transaction(engine, tenant.id) as session:
        checkpoint = await session.get(Checkpoint, (tenant.id, connection.id, sync.ORDERS))
        assert checkpoint is not None and checkpoint.failures == 0 and checkpoint.cursor is None


CHANGE = """mutation($id: ID!) { %s(input: {id: $id}) {
  connection { status syncRequestedAt } userErrors { field code } } }"""


async def test_an_admin_syncs_now_disables_and_enables_a_connection(
    site: Path,
    engine: AsyncEngine,
    settings: Settings,
    gql: GraphQLClient,
    client: httpx.AsyncClient,
    tenant: Tenant,
    other_tenant: Tenant,
    market: tuple[str, list[dict[str, object]]],
) -> None:
    ORDERS[:] = [market_order(1, 0.5)]
    FAILURES.clear()
    connection = await connected(engine, settings, gql, tenant, market[0])
    gid = global_id("ChannelConnection", connection.id)
    change = lambda name, key=tenant.key: gql.data(key, CHANGE % name, {"id": gid})  # noqa: E731
    requested = (await change("syncConnection"))["syncConnection"]
    assert requested["connection"]["syncRequestedAt"] is not None
    await worker.run_tenant_job(engine, settings, CATCH_UP, tenant.id)  # follows the request
    assert (await gql.data(tenant.key, LIST))["orders"]["totalCount"] == 1
    listed = await gql.data(
        tenant.key, "{ connections { edges { node { syncRequestedAt sync { recordsIn } } } } }"
    )
    assert listed["connections"]["edges"][0]["node"] == {"syncRequestedAt": None, "sync": {"recordsIn": 1}}
    # Disabled: nothing is pulled and webhooks are refused, until enabled again.
    assert (await change("disableConnection"))["disableConnection"]["connection"]["status"] == "DISABLED"
    ORDERS.append(
        {**market_order(2, 0), "updated_at": (datetime.now(UTC) - timedelta(minutes=1)).isoformat()}
    )
    await worker.run_tenant_job(engine, settings, SYNC, tenant.id)
    assert (await gql.data(tenant.key, LIST))["orders"]["totalCount"] == 1
    body = b'{"id": "evt-9", "type": "order.updated", "data": {}}'
    refused = await client.post(
        f"/webhooks/example/{connection.id}", content=body, headers={"x-signature": "x"}
    )
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "DISABLED"
    not_now = (await change("syncConnection"))["syncConnection"]
    assert not_now == {"connection": None, "userErrors": [{"field": "id", "code": "NOT_ACTIVE"}]}
    assert (await change("enableConnection"))["enableConnection"]["connection"]["status"] == "ACTIVE"
    await worker.run_tenant_job(engine, settings, SYNC, tenant.id)
    assert (await gql.data(tenant.key, LIST))["orders"]["totalCount"] == 2
    # Another tenant's key finds no such connection.
    foreign = (await change("disableConnection", other_tenant.key))["disableConnection"]
    assert foreign == {"connection": None, "userErrors": [{"field": "id", "code": "NOT_FOUND"}]}


async def test_listings_pulled_from_a_connection_are_judged_for_conflicts(
    site: Path,
    engine: AsyncEngine,
    settings: Settings,
    gql: GraphQLClient,
    tenant: Tenant,
    market: tuple[str, list[dict[str, object]]],
) -> None:
    ORDERS.clear()
    FAILURES.clear()
    at = lambda hours: (datetime.now(UTC) - timedelta(hours=hours)).isoformat()  # noqa: E731
    LISTINGS[:] = [
        {"sku": "TEA-1", "seller": "cheap-store", "price": 7900, "currency": "CNY", "seen_at": at(3), "url": "https://ex/1"},
        {"sku": "TEA-1", "seller": "fair-store", "price": 10000, "currency": "CNY", "seen_at": at(2), "url": "https://ex/2"},
    ]  # fmt: skip
    policy = (
        """mutation($input: PricePolicyInput!) { createPricePolicy(input: $input) { userErrors { code } } }"""
    )
    made = await gql.data(
        tenant.key,
        policy,
        {"input": {"sku": "TEA-1", "currency": "CNY", "minPrice": 10000, "validFrom": at(48)}},
    )
    assert made["createPricePolicy"]["userErrors"] == []
    await connected(engine, settings, gql, tenant, market[0])
    await worker.run_tenant_job(engine, settings, SYNC, tenant.id)
    found = await gql.data(
        tenant.key,
        "{ conflicts { edges { node { cause channel partner { sellerId } evidence { price url } } } } }",
    )
    seen = sorted(
        (n["partner"]["sellerId"], n["cause"], n["channel"], [e["price"] for e in n["evidence"]])
        for n in (e["node"] for e in found["conflicts"]["edges"])
    )
    # Both sellers are new to the brand (unauthorised); only the cheap one broke MAP too.
    assert seen == [
        ("cheap-store", "BELOW_MAP", "example", [7900]),
        ("cheap-store", "UNAUTHORISED_SELLER", "example", [7900]),
        ("fair-store", "UNAUTHORISED_SELLER", "example", [10000]),
    ]


def test_the_next_scheduled_sync_follows_the_jobs_schedule() -> None:
    at = datetime(2026, 11, 27, 10, 3, 20, tzinfo=UTC)
    assert next_scheduled_sync(at) == datetime(2026, 11, 27, 10, 5, tzinfo=UTC)
    assert next_scheduled_sync(datetime(2026, 11, 27, 10, 55, tzinfo=UTC)) == datetime(
        2026, 11, 27, 11, 0, tzinfo=UTC
    )
    assert SYNC.cron == sync.SCHEDULE
