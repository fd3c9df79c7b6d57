"""Background jobs: the schedules fan out per tenant, workers run each job once, in its tenant."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest
from asgi_lifespan import LifespanManager
from loyalty_support import backdate_rules, balance, order, program, rules
from pgqueuer import PgQueuer
from pgqueuer.models import Job
from pgqueuer.queries import Queries
from pgqueuer.types import QueueExecutionMode
from sqlalchemy.ext.asyncio import AsyncEngine

from brandloop.app import create_app
from brandloop.jobs import worker
from brandloop.settings import Settings
from support import GraphQLClient, Tenant


@pytest.fixture
async def connection(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(worker.dsn(database_url))
    yield conn
    await conn.close()


async def drain(pgq: PgQueuer) -> None:
    await asyncio.wait_for(pgq.run(mode=QueueExecutionMode.drain, dequeue_timeout=timedelta(seconds=1)), 60)


async def test_a_scheduled_job_runs_once_per_tenant_in_its_tenant(
    engine: AsyncEngine,
    settings: Settings,
    database_url: str,
    connection: asyncpg.Connection,
    gql: GraphQLClient,
    tenant: Tenant,
) -> None:
    program_id = await program(gql, tenant, expiryPolicy="MONTHS", expiryPeriod=1)
    await rules(gql, tenant, program_id, pointsPerUnit="1")
    await backdate_rules(engine, tenant, days=90)
    customer = (await order(gql, tenant, "A", placed=-60 * 24 * 60))["order"]["customer"]["id"]
    assert (await balance(gql, tenant, customer))["total"] == 100  # earned two months ago, not expired yet
    queries = Queries.from_asyncpg_connection(connection)
    added = await worker.enqueue_for_tenants(engine, queries, "loyalty.expire")
    assert added >= 1
    assert await worker.enqueue_for_tenants(engine, queries, "loyalty.expire") == 0  # still queued: no twin
    pgq = PgQueuer.from_asyncpg_connection(connection)
    worker.install(pgq, engine, settings, schedules=False)
    await drain(pgq)
    assert (await balance(gql, tenant, customer))["total"] == 0
    assert await worker.enqueue_for_tenants(engine, queries, "loyalty.expire") == added  # done: queued again


async def test_two_workers_never_run_the_same_job(database_url: str, connection: asyncpg.Connection) -> None:
    queries = Queries.from_asyncpg_connection(connection)
    ids = await queries.enqueue(["test.count"] * 30, [str(n).encode() for n in range(30)], [0] * 30)
    runs: Counter[int] = Counter()
    workers = []
    others = []
    for _ in range(2):
        conn = await asyncpg.connect(worker.dsn(database_url))
        others.append(conn)
        pgq = PgQueuer.from_asyncpg_connection(conn)

        @pgq.entrypoint("test.count")
        async def count(job: Job) -> None:
            runs[job.id] += 1
            await asyncio.sleep(0.01)

        workers.append(drain(pgq))
    try:
        await asyncio.gather(*workers)
    finally:
        for conn in others:
            await conn.close()
    assert set(runs) == set(ids) and set(runs.values()) == {1}


async def test_the_api_process_can_run_the_worker(settings: Settings, engine: AsyncEngine) -> None:
    app = create_app(settings, worker=True)
    async with LifespanManager(app, shutdown_timeout=30):
        await asyncio.sleep(0.5)  # the worker has started, listening; stopping it must not hang
