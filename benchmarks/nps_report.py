"""Benchmark: npsReport over a million responses in one tenant.

    .venv/bin/python benchmarks/nps_report.py [--responses 1000000]

Builds a scratch database on BRANDLOOP_DATABASE_URL's server (or the embedded PostgreSQL) with one
tenant, 200,000 customers and the given number of survey responses spread over a year on four
channels, then times the report (best of 5) for a year by month, a quarter by channel and a month
by day, and prints PostgreSQL's plan of the yearly one. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import time
from datetime import UTC, datetime

from sqlalchemy import text

from brandloop.db.session import platform_transaction, tenant_transaction
from brandloop.nps import service
from brandloop.tenancy import service as tenancy
from scratch import scratch_database

DATASET = """
INSERT INTO customers (tenant_id, id, display_name, rfm_segment)
SELECT :t, gen_random_uuid(), 'Customer ' || i, (ARRAY['core_loyal', 'potential', 'dormant', 'new'])[1 + i % 4]
  FROM generate_series(1, 200000) i;

CREATE TEMP TABLE people AS SELECT id, row_number() OVER () AS n FROM customers;

INSERT INTO nps_invitations (tenant_id, id, survey_id, customer_id, channel, trigger_key, status, expires_at, created_at)
SELECT :t, gen_random_uuid(), :s, p.id, (ARRAY['wechat', 'email', 'shopee', 'tiktok'])[1 + i % 4],
       'bench:' || i, 'responded', timestamptz '2027-01-01', timestamptz '2026-01-01' + (i % 365) * interval '1 day'
  FROM generate_series(1, :responses) i JOIN people p ON p.n = 1 + i % 200000;

INSERT INTO nps_responses (tenant_id, id, invitation_id, survey_id, customer_id, channel, score, created_at)
SELECT tenant_id, gen_random_uuid(), id, survey_id, customer_id, channel,
       (abs(hashtext(id::text)) % 11), created_at + interval '3 hours'
  FROM nps_invitations
"""

REPORTS = [
    (
        "a year by month",
        service.Grouping.MONTH,
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    ),
    (
        "a quarter by channel",
        service.Grouping.CHANNEL,
        datetime(2026, 7, 1, tzinfo=UTC),
        datetime(2026, 10, 1, tzinfo=UTC),
    ),
    (
        "a month by day",
        service.Grouping.DAY,
        datetime(2026, 10, 1, tzinfo=UTC),
        datetime(2026, 11, 1, tzinfo=UTC),
    ),
]


async def run(responses: int) -> None:
    async with scratch_database() as db:
        engine = db.engine
        async with platform_transaction(engine) as session:
            tenant = await tenancy.create_tenant(session, slug="bench", name="Bench")
        async with tenant_transaction(engine, tenant.id) as session:
            survey = await service.create_survey(
                session,
                service.SurveyInput(
                    name="Bench",
                    question={"zh-CN": "推荐吗", "en": "Recommend?"},
                    channels=["wechat", "email"],
                ),
                actor="bench",
            )
        started = time.perf_counter()
        async with engine.begin() as conn:
            for statement in DATASET.split(";\n"):
                await conn.execute(text(statement), {"t": tenant.id, "s": survey.id, "responses": responses})
        async with engine.connect() as conn:
            await (await conn.execution_options(isolation_level="AUTOCOMMIT")).execute(text("VACUUM ANALYZE"))
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores")
        print(
            f"dataset: 1 tenant, 200,000 customers, {responses:,} responses over 2026, built in {time.perf_counter() - started:.0f} s"
        )
        for label, grouping, since, until in REPORTS:
            best = float("inf")
            for _ in range(5):
                async with tenant_transaction(engine, tenant.id) as session:
                    began = time.perf_counter()
                    rows, _ = await service.report(session, service.ReportFilter(since, until), grouping)
                    best = min(best, time.perf_counter() - began)
            print(f"{label:22} {len(rows):3} groups  {best * 1000:7.1f} ms (best of 5, both periods)")
        async with tenant_transaction(engine, tenant.id) as session:
            plan = await session.execute(
                text(
                    "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) "
                    + service._REPORT.format(
                        group=service._GROUPS[service.Grouping.MONTH], joins="", where=""
                    )
                ),
                {"tz": "UTC", "since": REPORTS[0][2], "until": REPORTS[0][3]},
            )
            print("plan of a year by month:")
            for (line,) in plan:
                print("   ", line)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--responses", type=int, default=1_000_000)
    asyncio.run(run(parser.parse_args().responses))
