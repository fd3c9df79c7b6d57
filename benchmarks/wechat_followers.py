"""Benchmark: WeChat followers, from pushes to customers with consent.

    .venv/bin/python benchmarks/wechat_followers.py [--followers 2000]

Serves the WeChat stand-in on loopback (safe mode), connects a scratch tenant's Official
Account to it, then: posts a subscribe push for each follower to the app's webhook address
(signature, msg_signature, AES decryption, storage), and runs the job `connections.catch_up`
until every follow is handled (user/info on the stand-in, identity resolution, two consent
grants, audit). Prints pushes a second and followers a second. Runs in a scratch database on
BRANDLOOP_DATABASE_URL's server (or the embedded PostgreSQL). Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import httpx
from asgi_lifespan import LifespanManager
from sqlalchemy import text

from brandloop.app import create_app
from brandloop.connections import service
from brandloop.connections.platforms import Platforms
from brandloop.connections.vault import vault
from brandloop.db.session import platform_transaction, tenant_transaction
from brandloop.jobs import worker
from brandloop.tenancy import service as tenancy
from brandloop_plugins.wechat.standin import WeChatStandIn
from scratch import machine, scratch_database, serving

PORT = 9184
APPID, SECRET, TOKEN, AES_KEY = "wx0123456789abcdef", "bench-secret", "benchtoken", "B" * 43
CATCH_UP = next(job for job in worker.JOBS if job.name == "connections.catch_up")


async def run(count: int) -> None:
    account = WeChatStandIn(APPID, SECRET, TOKEN, encoding_aes_key=AES_KEY)
    async with scratch_database() as db, serving(account.app, PORT) as base:
        engine, settings = db.engine, db.settings(public_url="http://bench.local")
        async with platform_transaction(engine) as session:
            tenant = await tenancy.create_tenant(session, slug="bench", name="Bench")
        async with tenant_transaction(engine, tenant.id) as session:
            connection = await service.create_connection(
                session, vault(settings), connector_key="wechat", name="Bench OA", actor="bench",
                config={"appid": account.appid, "secret": SECRET, "token": TOKEN, "encoding_aes_key": AES_KEY,
                        "api_base_url": base},
            )  # fmt: skip
        async with tenant_transaction(engine, tenant.id) as session, Platforms() as platforms:
            await service.connect_with_credentials(session, vault(settings), platforms, connection.id)
        hook = service.webhook_url(settings, "wechat", connection.id)
        print(machine())
        print(
            f"dataset: {count:,} followers of one Official Account in safe mode (AES), pushed one after another"
        )
        app = create_app(settings)
        async with (
            LifespanManager(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://bench.local"
            ) as client,
        ):
            pushes = [account.push(hook, account.follow(f"oBench{n:07d}")) for n in range(count)]
            started = time.perf_counter()
            for signed, body in pushes:
                answer = await client.post(httpx.URL(signed).raw_path.decode(), content=body)
                assert answer.text == "success", answer.text
            pushed = time.perf_counter() - started
        print(f"pushes verified, decrypted and stored: {pushed:.1f} s, {count / pushed:,.0f} a second")
        started, runs = time.perf_counter(), 0
        while True:
            runs += 1
            await worker.run_tenant_job(engine, settings, CATCH_UP, tenant.id)
            async with tenant_transaction(engine, tenant.id) as session:
                pending = await session.scalar(
                    text("SELECT count(*) FROM webhook_events WHERE processed_at IS NULL")
                )
            if not pending:
                break
        handled = time.perf_counter() - started
        async with tenant_transaction(engine, tenant.id) as session:
            customers = await session.scalar(text("SELECT count(*) FROM customers"))
            consents = await session.scalar(text("SELECT count(*) FROM consents"))
        print(
            f"followers handled: {handled:.1f} s, {count / handled:,.0f} a second "
            f"({customers:,} customers, {consents:,} consents, {runs} job runs)"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--followers", type=int, default=2000)
    asyncio.run(run(parser.parse_args().followers))
