"""Benchmark: the sync engine pulling a Shopee shop, in orders per second.

    .venv/bin/python benchmarks/sync_orders.py [--orders 20000]

Serves the Shopee stand-in on loopback with that many orders over the last days, connects a
scratch tenant to it (authorization through the stand-in), and runs the `connections.sync` job
until the shop is caught up: once unpaced (the engine's own capacity: fetch, validate, identity
resolution, upsert, checkpoint, a transaction a page) and once paced to Shopee's quota as in
production. Runs in a scratch database on BRANDLOOP_DATABASE_URL's server (or the embedded
PostgreSQL). Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from brandloop.connections import service
from brandloop.connections.platforms import Platforms
from brandloop.connections.vault import vault
from brandloop.db.session import platform_transaction, tenant_transaction
from brandloop.jobs import worker
from brandloop.tenancy import service as tenancy
from brandloop_plugins.shopee import ShopeeConnector
from brandloop_plugins.shopee.standin import ShopeeStandIn, sample_orders
from scratch import machine, scratch_database, serving

PORT = 9181
SYNC = next(job for job in worker.JOBS if job.name == "connections.sync")


async def run(count: int) -> None:
    # 37 s apart: 20,000 orders span the last 8.6 days, 9 windows of a day.
    orders = sample_orders(count, start=datetime.now(UTC) - timedelta(seconds=37 * count + 600))
    shop = ShopeeStandIn(partner_id=1, partner_key="bench-key", shop_id=2, orders=orders)
    async with scratch_database() as db, serving(shop.app, PORT) as base:
        engine, settings = db.engine, db.settings()
        print(machine())
        print(
            f"dataset: {count:,} Shopee orders (1 line each) from {count // 3:,} buyers, 50 a page, over the last {37 * count / 86400:.1f} days"
        )
        for label, rate in (
            ("unpaced", 1000.0),
            (f"paced at {ShopeeConnector.requests_per_second:g} req/s", None),
        ):
            # The connection's bucket is made at its first request (the authorization), at this rate.
            ShopeeConnector.requests_per_second = rate or 10.0
            async with platform_transaction(engine) as session:
                tenant = await tenancy.create_tenant(session, slug=f"b{uuid.uuid4().hex[:8]}", name="Bench")
            async with tenant_transaction(engine, tenant.id) as session:
                connection = await service.create_connection(
                    session, vault(settings), connector_key="shopee", name="Bench shop", actor="bench",
                    config={"partner_id": 1, "partner_key": "bench-key", "shop_id": 2, "api_base_url": base},
                )  # fmt: skip
            async with tenant_transaction(engine, tenant.id) as session, Platforms() as platforms:
                await service.complete_authorization(
                    session,
                    vault(settings),
                    platforms,
                    connection.id,
                    code=shop.issue_code(),
                    params={"shop_id": "2"},
                )
            calls = len(shop.calls)
            started = time.perf_counter()
            runs = 0
            while True:
                runs += 1
                await worker.run_tenant_job(engine, settings, SYNC, tenant.id)
                async with tenant_transaction(engine, tenant.id) as session:
                    caught = await session.scalar(
                        text(
                            "SELECT cursor IS NULL AND synced_until > now() - interval '1 minute' FROM sync_checkpoints"
                        )
                    )
                if caught:
                    break
            elapsed = time.perf_counter() - started
            async with tenant_transaction(engine, tenant.id) as session:
                stored = await session.scalar(text("SELECT count(*) FROM orders"))
                profiles = await session.scalar(text("SELECT count(*) FROM customers"))
            print(
                f"{label}: {elapsed:.1f} s, {stored / elapsed:,.0f} orders/s ({stored:,} orders, {profiles:,} profiles, "
                f"{len(shop.calls) - calls:,} API calls, {runs} job runs)"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=20_000)
    asyncio.run(run(parser.parse_args().orders))
