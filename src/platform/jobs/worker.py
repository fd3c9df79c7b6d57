"""Background jobs on PostgreSQL with pgqueuer (docs/operations.md, "Jobs").

Every job is a tenant job: its payload is the tenant's id, and it runs inside that tenant's
transaction (role and tenant set, as a request). The scheduled ones are declared here, in one
place; at their time a scheduled entry enqueues one job per active tenant, deduplicated per
tenant, so several workers on several machines run each tenant's job once. pgqueuer hands a job
to one worker (FOR UPDATE SKIP LOCKED); a job works in batches until it has nothing left, and is
idempotent, so a job retried after a crash does nothing twice.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import structlog
from pgqueuer import PgQueuer
from pgqueuer.models import Job, Schedule
from pgqueuer.queries import Queries
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from brandloop.conflicts import detection as conflicts
from brandloop.connections import messaging, sync
from brandloop.connections import service as connections
from brandloop.connections.platforms import Platforms
from brandloop.connections.vault import vault
from brandloop.customers import segments
from brandloop.db.session import platform_transaction, tenant_transaction
from brandloop.kpis import rollup
from brandloop.loyalty import ledger, tiers
from brandloop.nps import links
from brandloop.nps import service as nps
from brandloop.settings import Settings
from brandloop.tenancy import service as tenancy

log = structlog.get_logger("brandloop.jobs")

BATCH = 5000
"""Rows a job handles per transaction; it goes on while a batch comes back full."""


@dataclass(frozen=True, slots=True)
class TenantJob:
    name: str
    cron: str
    """When it runs for every active tenant (crontab, UTC)."""
    work: Callable[[Settings, AsyncSession], Awaitable[int]]
    """One batch in the tenant's transaction; returns how much it did."""
    more: Callable[[int], bool] = lambda done: done >= BATCH
    """Whether another batch is due after one that did `done`."""
    rounds: int | None = None
    """At most this many batches a run (None: until done)."""


JOBS = [
    TenantJob("loyalty.expire", "15 3 * * *", lambda _, s: ledger.expire_points(s, limit=BATCH)),
    TenantJob("loyalty.review_tiers", "30 3 * * *", lambda _, s: tiers.review(s, limit=BATCH)),
    TenantJob(
        "nps.invite_after_orders",
        "*/15 * * * *",
        lambda settings, s: nps.invite_after_orders(s, lambda i: links.link(settings, i), limit=BATCH),
    ),
    TenantJob(
        "nps.redeliver",
        "*/15 * * * *",
        lambda settings, s: nps.redeliver(s, lambda i: links.link(settings, i), limit=BATCH),
    ),
    TenantJob("segments.recompute", "0 2 * * *", lambda _, s: _whole(segments.recompute(s))),
    TenantJob("connections.refresh_grants", "*/10 * * * *", lambda settings, s: _refresh_grants(settings, s)),
    # A batch is one page of every connection; another follows while some have more.
    TenantJob(
        "connections.sync",
        sync.SCHEDULE,
        lambda settings, s: _platforms(settings, s, sync.sync_round),
        more=lambda pending: pending > 0,
        rounds=sync.ROUNDS,
    ),
    TenantJob("kpis.rollup", "*/15 * * * *", lambda _, s: _whole(rollup.catch_up(s))),
    TenantJob("conflicts.detect", "*/5 * * * *", lambda _, s: _detected(conflicts.detect(s, limit=BATCH))),
    # Connections with webhook events to follow or an admin's "sync now".
    TenantJob(
        "connections.catch_up",
        "* * * * *",
        lambda settings, s: _platforms(settings, s, sync.catch_up_round),
        more=lambda pending: pending > 0,
        rounds=sync.ROUNDS,
    ),
]


async def _platforms(
    settings: Settings,
    session: AsyncSession,
    work: Callable[..., Awaitable[int]],
) -> int:
    async with Platforms() as platforms:
        return await work(session, vault(settings), platforms, now=datetime.now(UTC))


async def _refresh_grants(settings: Settings, session: AsyncSession) -> int:
    async with Platforms() as platforms:
        return await connections.refresh_grants(session, vault(settings), platforms, limit=BATCH)


async def _detected(done: Awaitable[conflicts.Detection]) -> int:
    """Detection judges a batch of observations; another follows while the batch came back full."""
    return (await done).checked


async def _whole(done: Awaitable[int]) -> int:
    """A job done in one statement: never a full batch, so it runs once."""
    await done
    return 0


def dsn(url: str) -> str:
    """The plain PostgreSQL URL asyncpg connects with."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def enqueue_for_tenants(engine: AsyncEngine, queries: Queries, name: str) -> int:
    """One job per active tenant, unless that tenant's is still queued or running (pgqueuer's
    dedupe key holds while a job is queued or picked); returns how many were added."""
    async with platform_transaction(engine) as session:
        tenants = [t.id for t in await tenancy.list_tenants(session) if t.status == "active"]
    if not tenants:
        return 0
    ids = await queries.enqueue(
        [name] * len(tenants),
        [str(t).encode() for t in tenants],
        [0] * len(tenants),
        dedupe_key=[f"{name}:{t}" for t in tenants],
        on_conflict="skip",
    )
    return sum(1 for i in ids if i is not None)


async def run_tenant_job(
    engine: AsyncEngine, settings: Settings, job: TenantJob, tenant_id: uuid.UUID
) -> int:
    done, rounds = 0, 0
    while True:
        async with tenant_transaction(engine, tenant_id) as session:
            count = await job.work(settings, session)
        done, rounds = done + count, rounds + 1
        if not job.more(count) or (job.rounds is not None and rounds >= job.rounds):
            return done


def install(pgq: PgQueuer, engine: AsyncEngine, settings: Settings, *, schedules: bool = True) -> None:
    """Register every job with a worker (and its schedules, unless told not to)."""
    messaging.register(settings)  # jobs invite to surveys
    for job in JOBS:

        async def handle(found: Job, job: TenantJob = job) -> None:
            assert found.payload is not None
            tenant_id = uuid.UUID(found.payload.decode())
            done = await run_tenant_job(engine, settings, job, tenant_id)
            log.info("job done", job=job.name, tenant_id=str(tenant_id), done=done)

        pgq.entrypoint(job.name)(handle)
        if schedules:

            async def fire(schedule: Schedule, job: TenantJob = job) -> None:
                assert isinstance(pgq.queries, Queries)
                added = await enqueue_for_tenants(engine, pgq.queries, job.name)
                log.info("job scheduled", job=job.name, tenants=added)

            pgq.schedule(f"{job.name}.schedule", job.cron)(fire)


async def run(engine: AsyncEngine, settings: Settings, url: str, stop: asyncio.Event) -> None:
    """Work until `stop` is set: jobs and schedules, on a connection of its own (LISTEN)."""
    connection = await asyncpg.connect(dsn(url))
    try:
        pgq = PgQueuer.from_asyncpg_connection(connection)
        install(pgq, engine, settings)
        worker = asyncio.create_task(pgq.run())
        await stop.wait()
        pgq.shutdown.set()
        await worker
    finally:
        await connection.close()
