"""Benchmark: the hot reads served by `brandloop serve`, planned (one SQL statement) and not.

    .venv/bin/python benchmarks/read_paths.py [--scale 1.0] [--seconds 10]

Builds a multi-tenant dataset with SQL in a scratch database on BRANDLOOP_DATABASE_URL's server
(or the embedded PostgreSQL): 50 tenants, one holding 40% of the rows; at --scale 1, 200,000
customers with ~2 tags each, 2.2 million orders with 2 lines each. Starts `brandloop serve`
(one process) with the planner on, then off; checks both give the same data; drives each
operation with wrk (concurrency 8) and prints req/s, latency and the ratio. Needs `wrk`
(Debian: apt-get install wrk). Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url

from brandloop.auth import service as auth
from brandloop.auth.permissions import Role
from brandloop.db import embedded, migrate
from brandloop.db.engine import create_engine
from brandloop.db.session import tenant_transaction

OPERATIONS = {
    "page of 50 customers, tags, last 5 orders": (
        "{ customers(first: 50) { totalCount pageInfo { hasNextPage endCursor } edges { node { id displayName email "
        "lifecycleStage tags { name } orders(first: 5) { edges { node { id channel status placedAt total { amount currency } } } } } } } }"
    ),
    "one customer with 20 orders": (
        "query($id: ID!) { customer(id: $id) { id displayName email phone createdAt identities { kind value } "
        "orders(first: 20) { totalCount edges { node { id externalId status placedAt total { amount currency } "
        "lines { sku quantity unitPrice { amount } } } } } } }"
    ),
    "orders page by channel and time": (
        '{ orders(first: 50, filter: {channel: "shopee", placedAfter: "2026-01-01T00:00:00Z", placedBefore: "2026-07-01T00:00:00Z"}) '
        "{ pageInfo { hasNextPage } edges { node { id externalId status placedAt total { amount currency } customer { id displayName } } } } }"
    ),
}

DATASET = """
INSERT INTO tenants (id, slug, name)
SELECT gen_random_uuid(), 'bench-' || n, 'Bench ' || n FROM generate_series(0, 49) n;

CREATE TEMP TABLE t AS SELECT id, row_number() OVER (ORDER BY slug) - 1 AS n FROM tenants WHERE slug LIKE 'bench-%';

INSERT INTO tags (tenant_id, id, name)
SELECT t.id, gen_random_uuid(), 'tag-' || k FROM t, generate_series(1, 20) k;

-- 40% of the customers belong to tenant 0, the rest spread over the other 49.
INSERT INTO customers (tenant_id, id, display_name, email, phone, lifecycle_stage)
SELECT (SELECT id FROM t WHERE t.n = CASE WHEN i % 10 < 4 THEN 0 ELSE 1 + i % 49 END),
       gen_random_uuid(), 'Customer ' || i, 'c' || i || '@example.cn', '+86139' || lpad(i::text, 8, '0'),
       (ARRAY['new', 'active', 'dormant', 'churned'])[1 + i % 4]
  FROM generate_series(1, :customers) i;

INSERT INTO customer_tags (tenant_id, customer_id, tag_id)
SELECT c.tenant_id, c.id, tg.id
  FROM customers c
  JOIN LATERAL (SELECT id FROM tags WHERE tags.tenant_id = c.tenant_id
                 ORDER BY md5(c.id::text || tags.id::text) LIMIT 2) tg ON true;

-- 10 orders a customer, 20 for every hundredth.
INSERT INTO orders (tenant_id, id, channel, external_id, customer_id, status, currency, subtotal, total,
                    placed_at, source_updated_at)
SELECT c.tenant_id, gen_random_uuid(), (ARRAY['shopee', 'tiktok', 'amazon', 'wechat'])[1 + k % 4],
       c.id::text || '-' || k, c.id, (ARRAY['paid', 'shipped', 'completed'])[1 + k % 3], 'CNY',
       1000 + k * 10, 1000 + k * 10,
       timestamptz '2026-01-01' + (k * 17 + abs(hashtext(c.id::text)) % 300) * interval '1 day' / 2,
       timestamptz '2026-01-01'
  FROM customers c
  JOIN LATERAL generate_series(1, CASE WHEN abs(hashtext(c.id::text)) % 100 = 0 THEN 20 ELSE 10 END) k ON true;

INSERT INTO order_lines (tenant_id, order_id, line_no, sku, product_name, quantity, unit_price)
SELECT o.tenant_id, o.id, l, 'SKU-' || l, 'Product ' || l, l, 500
  FROM orders o, generate_series(1, 2) l;

INSERT INTO customer_identities (tenant_id, id, customer_id, kind, value, source)
SELECT tenant_id, gen_random_uuid(), id, 'email', email, 'manual' FROM customers;
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def build(url: str, scale: float) -> tuple[str, str]:
    """Load the dataset; returns an API key of the biggest tenant and a customer with 20 orders."""
    engine = create_engine(url)
    await migrate.upgrade(engine)
    started = time.perf_counter()
    async with engine.begin() as conn:
        for statement in DATASET.split(";\n"):
            if statement.strip():
                await conn.execute(
                    text(statement), {"customers": int(200_000 * scale)} if ":customers" in statement else {}
                )
        tenant_id, customer_id = (
            await conn.execute(
                text(
                    """SELECT c.tenant_id, c.id FROM customers c JOIN tenants t ON t.id = c.tenant_id
                        WHERE t.slug = 'bench-0' AND (SELECT count(*) FROM orders o WHERE o.customer_id = c.id) = 20
                        LIMIT 1"""
                )
            )
        ).one()
        counts = (
            await conn.execute(
                text(
                    "SELECT (SELECT count(*) FROM customers), (SELECT count(*) FROM orders), (SELECT count(*) FROM order_lines)"
                )
            )
        ).one()
    async with engine.connect() as conn:  # VACUUM: all-visible pages, as a settled database has
        await (await conn.execution_options(isolation_level="AUTOCOMMIT")).execute(text("VACUUM ANALYZE"))
    print(
        f"dataset: 50 tenants, {counts[0]:,} customers, {counts[1]:,} orders, {counts[2]:,} order lines "
        f"(40% in one tenant), built in {time.perf_counter() - started:.0f} s"
    )
    async with tenant_transaction(engine, tenant_id) as session:
        key = (await auth.create_api_key(session, name="bench", role=Role.VIEWER, actor="bench")).secret
    await engine.dispose()
    global_id = __import__("brandloop.graphql.relay", fromlist=["global_id"]).global_id(
        "Customer", customer_id
    )
    return key, global_id


def serve(url: str, planner: bool, data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRANDLOOP_")}
    env.update(
        BRANDLOOP_DATABASE_URL=url,
        BRANDLOOP_PLANNER=str(planner).lower(),
        BRANDLOOP_LOG_LEVEL="WARNING",
        BRANDLOOP_DATA_DIR=str(data_dir),
        BRANDLOOP_ENVIRONMENT="development",
    )
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "brandloop"), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if httpx.get(f"{base}/readyz").status_code == 200:
                return process, base
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("brandloop serve did not start")


def wrk(base: str, key: str, body: str, seconds: int, workdir: Path) -> dict[str, float]:
    script = workdir / "post.lua"
    script.write_text(
        f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\n'
        f'wrk.headers["Content-Type"] = "application/json"\nwrk.headers["Authorization"] = "Bearer {key}"\n'
    )
    out = subprocess.run(
        ["wrk", "-t2", "-c8", f"-d{seconds}s", "--latency", "-s", str(script), f"{base}/graphql"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in out:
        raise RuntimeError(out)

    def latency(label: str) -> float:
        value, unit = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return {"rps": rate, "p50": latency("50"), "p99": latency("99")}


def main(scale: float, seconds: int) -> None:
    server = os.environ.get("BRANDLOOP_DATABASE_URL")
    workdir = Path(tempfile.mkdtemp(prefix="brandloop-reads-"))
    server = server or embedded.start(workdir)
    name = f"brandloop_reads_{uuid.uuid4().hex[:8]}"
    admin_url = make_url(server).set(drivername="postgresql+asyncpg").render_as_string(False)
    url = make_url(server).set(drivername="postgresql+asyncpg", database=name).render_as_string(False)

    async def admin(sql: str) -> None:
        engine = create_engine(admin_url)
        async with engine.connect() as conn:
            await (await conn.execution_options(isolation_level="AUTOCOMMIT")).execute(text(sql))
        await engine.dispose()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} cores; wrk -t2 -c8 -d{seconds}s per operation"
        )
        key, customer = asyncio.run(build(url, scale))
        bodies = {
            op: json.dumps({"query": query, "variables": {"id": customer}})
            for op, query in OPERATIONS.items()
        }
        results: dict[str, dict[bool, dict[str, float]]] = {op: {} for op in OPERATIONS}
        answers: dict[bool, dict[str, object]] = {}
        for planner in (True, False):
            process, base = serve(url, planner, workdir)
            try:
                headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
                answers[planner] = {
                    op: httpx.post(f"{base}/graphql", content=b, headers=headers).json()["data"]
                    for op, b in bodies.items()
                }
                for op, body in bodies.items():
                    results[op][planner] = wrk(base, key, body, seconds, workdir)
            finally:
                process.send_signal(signal.SIGINT)
                process.wait(timeout=30)
        print("same data planned and unplanned:", answers[True] == answers[False])
        print(
            f"{'operation':45} {'planned req/s':>14} {'p50 ms':>7} {'p99 ms':>7} {'resolvers req/s':>16} {'p50 ms':>7} {'ratio':>6}"
        )
        for op, by in results.items():
            on, off = by[True], by[False]
            print(
                f"{op:45} {on['rps']:14.0f} {on['p50']:7.1f} {on['p99']:7.1f} {off['rps']:16.0f} {off['p50']:7.1f} "
                f"{on['rps'] / off['rps']:6.1f}"
            )
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--scale", type=float, default=1.0, help="1.0: 200,000 customers, ~2.2 million orders"
    )
    parser.add_argument("--seconds", type=int, default=10)
    arguments = parser.parse_args()
    main(arguments.scale, arguments.seconds)
