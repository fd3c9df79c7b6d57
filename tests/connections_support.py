"""Helpers for the connection tests."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import uvicorn
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp

from brandloop.connections import sync
from brandloop.connections.models import Checkpoint
from brandloop.connections.platforms import Platforms
from brandloop.connections.vault import vault
from brandloop.db.session import tenant_transaction
from brandloop.settings import Settings
from support import GraphQLClient, Tenant


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def serving(app: ASGIApp) -> AsyncIterator[str]:
    """The app served by uvicorn on loopback, for as long as the block runs; yields its URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn.Server offers a flag, not an event)
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


ORDERS: list[dict[str, object]] = []
"""What the example platform stand-in (tests/connectors/conftest.py) lists, two a page."""
LISTINGS: list[dict[str, object]] = []
"""What the example platform's stand-in shows as listings, all on one page."""
FAILURES: dict[str, int] = {}
"""How many more times the stand-in fails a request for a cursor."""

CREATE = """mutation($input: CreateConnectionInput!) { createConnection(input: $input) {
  connection { id connector name status config secretsSet } userErrors { field code } } }"""


async def create(gql: GraphQLClient, tenant: Tenant, **given: object) -> dict[str, object]:
    data = await gql.data(
        tenant.key,
        CREATE,
        {
            "input": {
                "connector": "example",
                "name": "Flagship store",
                "config": {"app_key": "k1", "app_secret": "s3cret-value"},
                **given,
            }
        },
    )
    return dict(data["createConnection"])


START = """mutation($id: ID!) { startAuthorization(input: {id: $id}) { url userErrors { code } } }"""


async def authorize_through(
    gql: GraphQLClient, client: httpx.AsyncClient, tenant: Tenant, connection_id: str
) -> httpx.Response:
    """Start the connection's authorization, consent on the platform's stand-in (it redirects
    with a code), and come back through Brandloop's callback."""
    url = (await gql.data(tenant.key, START, {"id": connection_id}))["startAuthorization"]["url"]
    async with httpx.AsyncClient() as seller:
        consent = await seller.get(url)
    assert consent.status_code == 302, consent.text
    back = httpx.URL(consent.headers["location"])
    return await client.get("/connectors/callback", params=dict(back.params))


async def drain(
    engine: AsyncEngine, settings: Settings, tenant_id: uuid.UUID, connection_id: uuid.UUID, rounds: int = 400
) -> Checkpoint:
    """Sync rounds until the connection has caught up, jumping the clock past any backoff."""
    now = datetime.now(UTC)
    for _ in range(rounds):
        async with tenant_transaction(engine, tenant_id) as session, Platforms() as platforms:
            more = await sync.sync_round(session, vault(settings), platforms, now=now)
            checkpoint = await session.get(Checkpoint, (tenant_id, connection_id, sync.ORDERS))
        assert checkpoint is not None
        if more:
            continue
        if checkpoint.retry_at is None and checkpoint.cursor is None and checkpoint.synced_until >= now:
            return checkpoint
        if checkpoint.retry_at is not None:
            now = max(now, checkpoint.retry_at) + timedelta(seconds=1)
    raise AssertionError(f"not caught up after {rounds} rounds: {checkpoint.last_error}")


async def stored_orders(engine: AsyncEngine, tenant_id: uuid.UUID, channel: str) -> list[tuple[object, ...]]:
    """The tenant's orders of a channel, comparable across tenants."""
    async with tenant_transaction(engine, tenant_id) as session:
        rows = await session.execute(
            text(
                "SELECT o.external_id, o.status, o.currency, o.total, o.placed_at, o.source_updated_at,"
                " (SELECT count(*) FROM order_lines l WHERE l.order_id = o.id) AS lines,"
                " (SELECT count(*) FROM customer_identities i WHERE i.customer_id = o.customer_id) AS identities"
                " FROM orders o WHERE o.channel = :channel ORDER BY o.external_id"
            ),
            {"channel": channel},
        )
        return [tuple(r) for r in rows]


WORKER = str(Path(__file__).with_name("connectors") / "work_until_done.py")


async def kill_and_finish(
    job: str,
    tenant_id: uuid.UUID,
    settings: Settings,
    *,
    seed: int,
    kills: int,
    lines: int = 5,
    pause: float = 0.3,
) -> int:
    """Run a job's rounds for the tenant in a worker process (connectors/work_until_done.py) and
    kill it (SIGKILL: no cleanup) a random moment after a random number (1 to `lines`) of its
    lines, `kills` times unless it finishes first; then run it to the end. Returns how many
    times it was killed."""
    env = {**os.environ, "BRANDLOOP_DATABASE_URL": str(settings.database_url),
           "BRANDLOOP_DATA_DIR": str(settings.data_dir)}  # fmt: skip
    rng, killed = random.Random(seed), 0
    while killed < kills:
        process = await asyncio.create_subprocess_exec(
            sys.executable, WORKER, job, str(tenant_id), env=env, stdout=asyncio.subprocess.PIPE
        )
        assert process.stdout is not None
        for _ in range(rng.randrange(1, lines + 1)):
            if not await process.stdout.readline():
                break
        await asyncio.sleep(rng.uniform(0, pause))  # in a fetch, a write, a commit, or between two
        if process.returncode is not None:
            break
        process.kill()
        await process.wait()
        killed += 1
    finished = await asyncio.create_subprocess_exec(
        sys.executable, WORKER, job, str(tenant_id), env=env, stdout=asyncio.subprocess.DEVNULL
    )
    assert await finished.wait() == 0
    return killed
