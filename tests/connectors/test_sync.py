"""The sync engine against the example platform on loopback: orders flow in, exactly once,
through a failure in the middle."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from connections_support import FAILURES, ORDERS, create
from sqlalchemy.ext.asyncio import AsyncEngine

from brandloop.connections import platforms, service, sync
from brandloop.connections.models import Checkpoint, Connection
from brandloop.connections.platforms import Platforms
from brandloop.connections.vault import vault
from brandloop.db.session import tenant_transaction
from brandloop.graphql.relay import pk_of
from brandloop.jobs import worker
from brandloop.settings import Settings
from support import GraphQLClient, Tenant

NOW = datetime.now(UTC)
SYNC = next(job for job in worker.JOBS if job.name == "connections.sync")
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
