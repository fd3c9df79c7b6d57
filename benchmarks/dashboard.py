"""Benchmark: the default dashboard of a tenant with 2 million orders.

    .venv/bin/python benchmarks/dashboard.py [--orders 2000000]

Writes the orders straight into the tables in SQL (400,000 customers in RFM segments, a third of
them loyalty members, five channels, four ship regions, two currencies, a year and a half),
rebuilds the KPI roll-ups for the whole span (timed), then reads the default four-part dashboard
(16 widgets over the last 30 days, by day, with comparisons and breakdowns), a 365-day version of
it, and every KPI of the catalogue over 30 days with a breakdown by each of its dimensions, each
several times, and prints the latencies. Runs in a
scratch database on BRANDLOOP_DATABASE_URL's server (or the embedded PostgreSQL). Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import text

from brandloop.db.session import platform_transaction, tenant_transaction
from brandloop.kpis import rollup, service
from brandloop.kpis.catalogue import KPIS
from brandloop.tenancy import service as tenancy
from scratch import machine, scratch_database

DAYS = 540


async def run(count: int) -> None:
    today = datetime.now(UTC).date()
    async with scratch_database() as db:
        engine = db.engine
        async with platform_transaction(engine) as session:
            tenant = await tenancy.create_tenant(session, slug="bench", name="Bench")
        started = time.perf_counter()
        async with platform_transaction(engine) as session:
            params = {"t": tenant.id, "n": count, "customers": count // 5, "days": DAYS, "today": today}
            await session.execute(
                text(
                    "INSERT INTO customers (tenant_id, id, display_name, rfm_segment) SELECT :t, gen_random_uuid(), 'C' || g,"
                    " (ARRAY['core_loyal','potential','dormant','new','churned'])[1 + g % 5]"
                    " FROM generate_series(1, :customers) g"
                ),
                params,
            )
            program = uuid.uuid4()
            await session.execute(
                text(
                    "INSERT INTO loyalty_programs (tenant_id, id, name, points_name, status, enrolment, expiry_policy)"
                    " VALUES (:t, :p, 'Club', 'Points', 'active', 'automatic', 'none')"
                ),
                {**params, "p": program},
            )
            await session.execute(
                text(
                    "INSERT INTO loyalty_accounts (tenant_id, id, program_id, customer_id, enrolled_at)"
                    " SELECT :t, gen_random_uuid(), :p, id, CAST(:today AS timestamptz) - interval '400 days'"
                    " FROM customers WHERE id::text < '5'"
                ),
                {**params, "p": program},
            )
            await session.execute(
                text(
                    """
                    INSERT INTO exchange_rates (tenant_id, currency, day, rate)
                    SELECT :t, 'USD', CAST(:today AS date) - d, 7.1 FROM generate_series(0, :days) d
                    """
                ),
                params,
            )
            await session.execute(
                text(
                    """
                    WITH c AS (SELECT id, row_number() OVER () AS n FROM customers)
                    INSERT INTO orders (tenant_id, id, channel, external_id, customer_id, status, currency, subtotal,
                                        total, refunded, placed_at, source_updated_at, ship_region)
                    SELECT :t, gen_random_uuid(), (ARRAY['shopee','tiktok_shop','wechat','amazon','own_store'])[1 + g % 5],
                           'B' || g, c.id, (ARRAY['paid','completed','shipped','cancelled','completed'])[1 + (g / 5) % 5],
                           CASE WHEN g % 11 = 0 THEN 'USD' ELSE 'CNY' END, 1000 + g % 40000, 1000 + g % 40000, 0,
                           CAST(:today AS timestamptz) - (g % (:days * 1440)) * interval '1 minute',
                           CAST(:today AS timestamptz) - (g % (:days * 1440)) * interval '1 minute',
                           (ARRAY['CN-SH','CN-GD','CN-BJ',NULL])[1 + g % 4]
                      FROM generate_series(1, :n) g JOIN c ON c.n = 1 + (g::bigint * 7919) % :customers
                    """
                ),
                params,
            )
            await session.execute(text("ANALYZE"))
        loaded = time.perf_counter() - started
        print(machine())
        print(
            f"dataset: {count:,} orders of {count // 5:,} customers over {DAYS} days, 5 channels, CNY and USD (written in {loaded:.0f} s)"
        )
        started = time.perf_counter()
        first = today - timedelta(days=DAYS)
        month = first
        while month <= today:
            end = min(
                date(month.year + month.month // 12, month.month % 12 + 1, 1) - timedelta(days=1), today
            )
            async with tenant_transaction(engine, tenant.id) as session:
                await rollup.rebuild(session, month, end)
            month = end + timedelta(days=1)
        print(f"roll-ups rebuilt for {DAYS} days in {time.perf_counter() - started:.1f} s")
        async with tenant_transaction(engine, tenant.id) as session:
            rows = await session.scalar(text("SELECT count(*) FROM kpi_customer_days"))
        print(f"kpi_customer_days: {rows:,} rows")
        every_kpi = [
            service.Widget(section="brand", kpi=kpi.key, breakdown=by)
            for kpi in KPIS.values()
            for by in (None, *kpi.dimensions)
        ]
        for label, widgets in (
            ("default dashboard, last 30 days (16 widgets)", service.DEFAULT_WIDGETS),
            ("the same over 365 days", [w.model_copy(update={"days": 365}) for w in service.DEFAULT_WIDGETS]),
            (f"every KPI, 30 days, by each dimension ({len(every_kpi)} widgets)", every_kpi),
        ):
            timings = []
            for _ in range(5):
                began = time.perf_counter()
                async with tenant_transaction(engine, tenant.id) as session:
                    await service.evaluate(session, widgets, today)
                timings.append((time.perf_counter() - began) * 1000)
            print(
                f"{label}: median {statistics.median(timings):.0f} ms, min {min(timings):.0f} ms over 5 reads"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=2_000_000)
    asyncio.run(run(parser.parse_args().orders))
