"""Benchmark: `brandloop import orders` end to end, in order lines per second.

    .venv/bin/python benchmarks/import_orders.py [--orders 100000] [--loyalty]

Generates a realistic CSV (several channels and currencies, 1-5 lines an order, buyers who come
back on other channels with shared phones and emails), imports it into a scratch database on
BRANDLOOP_DATABASE_URL's server (or the embedded PostgreSQL), then imports it again (everything
unchanged). Prints the machine, the dataset and the rates. With --loyalty, a loyalty program with
multipliers, a campaign, caps and three tiers earns from every order as it is imported. Not a test: nothing is
asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import random
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from brandloop.db.session import platform_transaction, tenant_transaction
from brandloop.loyalty import service as loyalty
from brandloop.loyalty import tiers
from brandloop.orders import service as orders_service
from brandloop.orders.importer import CSV_COLUMNS, import_orders
from brandloop.tenancy import service as tenancy
from scratch import machine, scratch_database

CHANNELS = [("shopee", "SGD"), ("tiktok", "CNY"), ("amazon", "USD"), ("wechat", "CNY"), ("offline", "CNY")]
PRODUCTS = [(f"SKU-{n:04d}", f"Product {n}", ["tea", "cups", "gifts", "snacks"][n % 4]) for n in range(400)]


def generate(path: Path, orders: int, seed: int = 7) -> int:
    rng = random.Random(seed)
    people = max(orders // 3, 1)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    lines = 0
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        for n in range(orders):
            person = rng.randrange(people)
            channel, currency = rng.choice(CHANNELS)
            placed = start + timedelta(minutes=rng.randrange(600_000))
            items = [rng.choice(PRODUCTS) for _ in range(rng.randint(1, 5))]
            quantities = [rng.randint(1, 3) for _ in items]
            prices = [rng.randrange(500, 30_000) for _ in items]
            subtotal = sum(q * p for q, p in zip(quantities, prices, strict=True))
            buyer = [
                f"Buyer {person}",
                f"buyer{person}@mail.example.cn" if rng.random() < 0.6 else "",
                f"+86139{person:08d}" if rng.random() < 0.7 else "",
                f"{channel}-{person}",
                f"union-{person}" if channel == "wechat" else "",
                "",
            ]
            for i, (sku, name, category) in enumerate(items):
                head = (
                    [
                        channel,
                        f"{channel.upper()}-{n}",
                        "completed",
                        currency,
                        subtotal,
                        placed.isoformat(),
                        "",
                        subtotal,
                        0,
                        0,
                        0,
                        0,
                        *buyer,
                    ]
                    if i == 0
                    else [channel, f"{channel.upper()}-{n}", *[""] * 16]
                )
                writer.writerow([*head, sku, name, category, quantities[i], prices[i]])
                lines += 1
    return lines


async def add_loyalty(engine: AsyncEngine, tenant_id: uuid.UUID) -> None:
    """A program whose rules were in force for the whole dataset, and rates for its currencies."""
    async with tenant_transaction(engine, tenant_id) as session:
        await orders_service.set_rates(
            session,
            [
                orders_service.RateInput(c, date(2024, 12, 31), Decimal(r))
                for c, r in (("SGD", "5.3"), ("USD", "7.1"))
            ],
            actor="bench",
        )
        program = await loyalty.create_program(
            session, loyalty.ProgramInput(name="Bench", points_name="Points"), actor="bench"
        )
        await loyalty.set_rules(
            session,
            program.id,
            {
                "points_per_unit": "1",
                "multipliers": [
                    {"applies_to": "channel", "value": "tiktok", "factor": "2"},
                    {"applies_to": "category", "value": "tea", "factor": "1.5"},
                ],
                "campaigns": [
                    {
                        "name": "Double 11",
                        "starts_at": "2025-11-11T00:00:00Z",
                        "ends_at": "2025-11-12T00:00:00Z",
                        "factor": "2",
                    }
                ],
                "daily_cap": 5000,
            },
            effective_from=None,
            actor="bench",
        )
        await tiers.set_ladder(
            session,
            program.id,
            [
                tiers.TierInput("Green", 0, 0),
                tiers.TierInput("Silver", 100_000, 0, Decimal("1.2")),
                tiers.TierInput("Gold", 500_000, 0, Decimal("1.5")),
            ],
            actor="bench",
        )
    async with platform_transaction(engine) as session:  # as if the rules had been saved before 2025
        await session.execute(text("UPDATE loyalty_rule_versions SET effective_from = '2024-12-31'"))


async def run(orders: int, batch_size: int, with_loyalty: bool) -> None:
    async with scratch_database() as db:
        engine = db.engine
        async with platform_transaction(engine) as session:
            tenant = await tenancy.create_tenant(session, slug="bench", name="Bench")
        if with_loyalty:
            await add_loyalty(engine, tenant.id)
        path = db.workdir / "orders.csv"
        lines = generate(path, orders)
        print(f"{machine()}, {_memory()}")
        print(
            f"dataset: {orders:,} orders, {lines:,} order lines, {path.stat().st_size / 1e6:.1f} MB CSV, batch {batch_size}"
            + (", a loyalty program earning from every order" if with_loyalty else "")
        )
        for label in ("first import", "re-import (all unchanged)"):
            started = time.perf_counter()
            summary = await import_orders(engine, tenant.id, path, batch_size=batch_size)
            elapsed = time.perf_counter() - started
            print(
                f"{label}: {elapsed:.1f} s, {lines / elapsed:,.0f} order lines/s "
                f"(created {summary.created:,}, updated {summary.updated:,}, unchanged {summary.unchanged:,}, "
                f"rejected {len(summary.rejected)})"
            )
        async with engine.connect() as conn:
            customers = await conn.scalar(text("SELECT count(*) FROM customers"))
            points = await conn.scalar(
                text(
                    "SELECT count(*) || ' entries, ' || coalesce(sum(delta), 0) || ' points' FROM loyalty_ledger"
                )
            )
            sizes = (
                await conn.execute(
                    text(
                        "SELECT sum(pg_total_relation_size(c.oid)) FILTER (WHERE c.relname IN ('orders', 'order_lines')),"
                        " pg_database_size(current_database())"
                        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                        " WHERE n.nspname = 'public' AND c.relkind = 'r'"
                    )
                )
            ).one()
        print(f"profiles resolved: {customers:,}; loyalty ledger: {points}")
        print(
            f"size: orders and lines with their indexes {int(sizes[0]) / 1e6:,.0f} MB "
            f"({int(sizes[0]) / orders:,.0f} bytes an order); the whole database {int(sizes[1]) / 1e6:,.0f} MB"
        )


def _memory() -> str:
    try:
        kb = int(
            next(
                line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
            ).split()[1]
        )
        return f"{kb / 2**20:.0f} GiB"
    except (OSError, StopIteration):
        return "memory unknown"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--loyalty", action="store_true", help="earn loyalty points while importing")
    arguments = parser.parse_args()
    asyncio.run(run(arguments.orders, arguments.batch_size, arguments.loyalty))
