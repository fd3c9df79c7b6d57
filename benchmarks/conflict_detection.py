"""Benchmark: conflict detection over listing observations, in listings judged per second.

    .venv/bin/python benchmarks/conflict_detection.py [--listings 200000]

A tenant with 500 SKUs under MAP (a third per channel, the rest for all channels, some in USD
judged at the day's rate), 300 authorised sellers, promotions for a tenth of them, and that many
listings over 30 days, a quarter of them below MAP and a few from unknown sellers. Runs the
`conflicts.detect` job until every listing is judged, in a scratch database on
BRANDLOOP_DATABASE_URL's server (or the embedded PostgreSQL). Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert as pg_insert

from brandloop.conflicts.models import Observation, Partner, PriceException, PricePolicy
from brandloop.db.base import uuid7
from brandloop.db.session import platform_transaction, tenant_transaction
from brandloop.jobs import worker
from brandloop.tenancy import service as tenancy
from scratch import machine, scratch_database

DETECT = next(job for job in worker.JOBS if job.name == "conflicts.detect")
CHANNELS = ["shopee", "tiktok_shop", "tmall", "jd"]


async def run(count: int) -> None:
    rng = random.Random(3)
    now = datetime.now(UTC)
    async with scratch_database() as db:
        engine = db.engine
        settings = db.settings()
        async with platform_transaction(engine) as session:
            tenant = await tenancy.create_tenant(session, slug="bench", name="Bench")
        async with tenant_transaction(engine, tenant.id) as session:
            await session.execute(
                text(
                    "INSERT INTO exchange_rates (tenant_id, currency, day, rate) VALUES (:t, 'USD', :d, 7.1)"
                ),
                {"t": tenant.id, "d": (now - timedelta(days=60)).date()},
            )
            sellers = [(rng.choice(CHANNELS), f"seller-{n}") for n in range(300)]
            partners = [
                {"tenant_id": tenant.id, "id": uuid7(), "name": s, "level": "retailer", "channel": c, "seller_id": s,
                 "authorised": True, "territories": [], "contacts": [], "violation_level": 0}
                for c, s in sellers
            ]  # fmt: skip
            await session.execute(pg_insert(Partner), partners)
            policies, floors = [], {}
            for n in range(500):
                currency = "USD" if n % 10 == 0 else "CNY"
                floor = rng.randrange(2_000, 50_000)
                policy = {"tenant_id": tenant.id, "id": uuid7(), "sku": f"SKU-{n}", "currency": currency, "digits": 2,
                          "channel": rng.choice(CHANNELS) if n % 3 == 0 else None, "min_price": floor,
                          "valid_from": now - timedelta(days=90), "valid_until": None}  # fmt: skip
                policies.append(policy)
                floors[f"SKU-{n}"] = floor * (7.1 if currency == "USD" else 1)
            await session.execute(pg_insert(PricePolicy), policies)
            promos = [
                {"tenant_id": tenant.id, "id": uuid7(), "policy_id": p["id"], "min_price": int(p["min_price"] * 0.8),
                 "starts_at": now - timedelta(days=10), "ends_at": now - timedelta(days=5),
                 "partner_ids": [rng.choice(partners)["id"] for _ in range(3)], "channels": [], "reason": "promo"}
                for p in policies[::10]
            ]  # fmt: skip
            await session.execute(pg_insert(PriceException), promos)
        for start in range(0, count, 10_000):
            rows = []
            for _ in range(min(10_000, count - start)):
                channel, seller = (
                    rng.choice(sellers) if rng.random() > 0.02 else ("shopee", f"grey-{rng.randrange(50)}")
                )
                sku = f"SKU-{rng.randrange(500)}"
                price = int(
                    floors[sku] * (rng.uniform(0.6, 0.99) if rng.random() < 0.25 else rng.uniform(1.0, 1.4))
                )
                rows.append(
                    {"tenant_id": tenant.id, "id": uuid7(), "channel": channel, "sku": sku, "seller_id": seller,
                     "seller_name": None, "price": price, "currency": "CNY", "digits": 2, "region": None,
                     "url": f"https://{channel}.example/{seller}/{sku}", "listing_id": None,
                     "observed_at": now - timedelta(minutes=rng.randrange(30 * 24 * 60))}
                )  # fmt: skip
            async with tenant_transaction(engine, tenant.id) as session:
                await session.execute(pg_insert(Observation), rows)
        print(machine())
        print(
            f"dataset: {count:,} listings over 30 days, 500 SKUs under MAP, 300 sellers (+50 unknown), {len(promos)} promotions"
        )
        started = time.perf_counter()
        judged = await worker.run_tenant_job(engine, settings, DETECT, tenant.id)
        elapsed = time.perf_counter() - started
        async with tenant_transaction(engine, tenant.id) as session:
            counts = (await session.execute(text("SELECT count(*), sum(breaches) FROM conflicts"))).one()
            evidence = await session.scalar(text("SELECT count(*) FROM conflict_evidence"))
        print(
            f"detection: {elapsed:.1f} s, {judged / elapsed:,.0f} listings/s ({judged:,} judged in batches of "
            f"{worker.BATCH:,}; {counts[0]:,} conflicts, {counts[1]:,} breaches, {evidence:,} pieces of evidence)"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--listings", type=int, default=200_000)
    asyncio.run(run(parser.parse_args().listings))
