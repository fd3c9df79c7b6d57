"""Benchmark: the sync engine pulling an Amazon seller, in orders per second.

    .venv/bin/python benchmarks/sync_amazon.py [--orders 5000]

Serves the Amazon stand-in on loopback (with the restricted role: buyers come through a
Restricted Data Token) with that many orders over the last hours, connects a scratch tenant
with the seller's refresh token, and runs the `connections.sync` job until caught up, with the
stand-in stating fast rates (the engine's own capacity: one getOrders a page of 100, one
getOrderItems an order, a Restricted Data Token a page). At Amazon's default rates the
item calls bound a backlog (getOrderItems 0.5 a second after a burst of 30): printed as
arithmetic, not run. Runs in a scratch database on BRANDLOOP_DATABASE_URL's server (or the
embedded PostgreSQL). Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from brandloop.connections import service
from brandloop.connections.platforms import Platforms
from brandloop.connections.vault import vault
from brandloop.db.session import platform_transaction, tenant_transaction
from brandloop.jobs import worker
from brandloop.tenancy import service as tenancy
from brandloop_plugins.amazon.connector import QUOTAS, AmazonConnector
from brandloop_plugins.amazon.standin import MARKETPLACE, AmazonStandIn, sample_orders
from scratch import machine, scratch_database, serving

PORT = 9183
SYNC = next(job for job in worker.JOBS if job.name == "connections.sync")


async def run(count: int) -> None:
    # 41 s apart, ending well before the two minutes getOrders needs to settle.
    orders = sample_orders(count, start=datetime.now(UTC) - timedelta(seconds=41 * count + 600))
    seller = AmazonStandIn("bench-client", "bench-secret", "Atzr|bench", orders=orders, restricted_role=True)
    AmazonConnector.requests_per_second = 1000.0  # the engine's capacity, not the safety cap
    async with scratch_database() as db, serving(seller.app, PORT) as base:
        engine, settings = db.engine, db.settings()
        print(machine())
        items = sum(len(o["items"]) for o in orders)
        print(
            f"dataset: {count:,} Amazon orders ({items:,} items) from {count // 3:,} buyers, over the last {41 * count / 3600:.1f} hours"
        )
        async with platform_transaction(engine) as session:
            tenant = await tenancy.create_tenant(session, slug="bench", name="Bench")
        async with tenant_transaction(engine, tenant.id) as session:
            connection = await service.create_connection(
                session, vault(settings), connector_key="amazon", name="Bench seller", actor="bench",
                config={"lwa_client_id": "bench-client", "lwa_client_secret": "bench-secret", "refresh_token": "Atzr|bench",
                        "region": "na", "marketplace_ids": [MARKETPLACE], "restricted_data": True,
                        "api_base_url": base, "lwa_token_url": f"{base}/auth/o2/token"},
            )  # fmt: skip
        async with tenant_transaction(engine, tenant.id) as session, Platforms() as platforms:
            await service.connect_with_credentials(session, vault(settings), platforms, connection.id)
        started, runs = time.perf_counter(), 0
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
            f"unpaced: {elapsed:.1f} s, {stored / elapsed:,.0f} orders/s ({stored:,} orders, {profiles:,} profiles, "
            f"{len(seller.calls):,} API calls, {runs} job runs)"
        )
        quota = QUOTAS["getOrderItems"]
        hours = max(count - quota.burst, 0) / quota.rate / 3600
        print(
            f"at Amazon's default getOrderItems rate ({quota.rate:g}/s, burst {quota.burst}): {hours:.1f} h for this backlog, 1,800 orders an hour after"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=5000)
    asyncio.run(run(parser.parse_args().orders))
