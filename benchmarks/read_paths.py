"""Benchmark: the hot reads served by `brandloop serve`, planned (one SQL statement) and not.

    .venv/bin/python benchmarks/read_paths.py [--scale 1.0] [--seconds 10]

Builds a multi-tenant dataset with SQL in a scratch database on BRANDLOOP_DATABASE_URL's server
(or the embedded PostgreSQL): 50 tenants, one holding 40% of the rows; at --scale 1, 200,000
customers with ~2 tags each, 2 million orders with 2 lines each and a loyalty ledger entry each
(50 entries for the customers with 20 orders). Then, one after the other, it serves the same operations from: `brandloop serve` (one process) with the planner, the same
without it, PostGraphile 4 (benchmarks/postgraphile, over the same tables as the same role under
the same row-level security, the tenant taken from a header), and a floor server (one
hand-written SQL statement per operation). It checks that all return the same data, drives each
with wrk (concurrency 8) and prints req/s, latency, the server process's CPU per request, and the
ratios. Needs wrk (apt-get install wrk) and node with npm. Not a test: nothing is asserted.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
from sqlalchemy import text
from sqlalchemy.engine import make_url

from brandloop.auth import service as auth
from brandloop.auth.permissions import Role
from brandloop.db import embedded, migrate
from brandloop.db.engine import create_engine
from brandloop.db.session import tenant_transaction
from brandloop.graphql.relay import global_id, parse_global_id

HERE = Path(__file__).resolve().parent

OPERATIONS = {
    "page": (  # a page of 50 customers with tags and their last 5 orders
        "{ customers(first: 50) { totalCount pageInfo { hasNextPage endCursor } edges { node { id displayName email "
        "lifecycleStage tags { name } orders(first: 5) { edges { node { id channel status placedAt total { amount currency } } } } } } } }"
    ),
    "customer": (  # one customer with 20 orders and their lines, and 50 loyalty ledger entries
        "query($id: ID!) { customer(id: $id) { id displayName email phone createdAt identities { kind value } "
        "orders(first: 20) { totalCount edges { node { id externalId status placedAt total { amount currency } "
        "lines { sku quantity unitPrice { amount } } } } } "
        "loyalty { balance { total } ledger(first: 50) { edges { node { points kind effectiveAt } } } } } }"
    ),
    "orders": (  # a page of orders filtered by channel and time
        '{ orders(first: 50, filter: {channel: "shopee", placedAfter: "2026-01-01T00:00:00Z", placedBefore: "2026-07-01T00:00:00Z"}) '
        "{ pageInfo { hasNextPage } edges { node { id externalId status placedAt total { amount currency } customer { id displayName } } } } }"
    ),
}

# The same operations in PostGraphile's schema (its default inflection of our composite keys).
POSTGRAPHILE = {
    "page": (
        "{ allCustomers(first: 50, orderBy: ID_ASC, condition: {mergedIntoId: null}) { totalCount pageInfo { hasNextPage endCursor } "
        "nodes { id displayName email lifecycleStage customerTagsByTenantIdAndCustomerId { nodes { tagByTenantIdAndTagId { name } } } "
        "ordersByTenantIdAndCustomerId(first: 5, orderBy: ID_ASC) { nodes { id channel status placedAt total currency } } } } }"
    ),
    "customer": (
        "query($id: UUID!, $t: UUID!) { customerByTenantIdAndId(tenantId: $t, id: $id) { id displayName email phone createdAt "
        "customerIdentitiesByTenantIdAndCustomerId { nodes { kind value } } "
        "ordersByTenantIdAndCustomerId(first: 20, orderBy: ID_ASC) { totalCount nodes { id externalId status placedAt total currency "
        "orderLinesByTenantIdAndOrderId(orderBy: LINE_NO_ASC) { nodes { sku quantity unitPrice } } } } "
        "loyaltyAccountsByTenantIdAndCustomerId(orderBy: PROGRAM_ID_ASC) { nodes { balance "
        "loyaltyLedgersByTenantIdAndAccountId(first: 50, orderBy: ID_ASC) { nodes { delta kind effectiveAt } } } } } }"
    ),
    "orders": (
        '{ allOrders(first: 50, orderBy: ID_ASC, filter: {channel: {equalTo: "shopee"}, placedAt: '
        '{greaterThanOrEqualTo: "2026-01-01T00:00:00Z", lessThan: "2026-07-01T00:00:00Z"}}) '
        "{ pageInfo { hasNextPage } nodes { id externalId status placedAt total currency customerByTenantIdAndCustomerId { id displayName } } } }"
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

-- A loyalty program per tenant: every customer a member, one entry per order, 30 more
-- (goodwill adjustments) for the customers with 20 orders: 50 entries.
INSERT INTO loyalty_programs (tenant_id, id, name, points_name, status, enrolment, expiry_policy)
SELECT id, gen_random_uuid(), 'Club', 'Points', 'active', 'automatic', 'none' FROM t;

INSERT INTO loyalty_accounts (tenant_id, id, program_id, customer_id)
SELECT c.tenant_id, gen_random_uuid(), p.id, c.id FROM customers c JOIN loyalty_programs p ON p.tenant_id = c.tenant_id;

INSERT INTO loyalty_ledger (tenant_id, id, account_id, delta, kind, source, source_id, idempotency_key,
                            effective_at, actor)
SELECT o.tenant_id, gen_random_uuid(), a.id, o.total / 100, 'earn', 'order', o.id::text, 'order:' || o.id,
       o.placed_at, 'bench'
  FROM orders o JOIN loyalty_accounts a ON a.tenant_id = o.tenant_id AND a.customer_id = o.customer_id;

INSERT INTO loyalty_ledger (tenant_id, id, account_id, delta, kind, source, idempotency_key, effective_at,
                            reason, actor)
SELECT a.tenant_id, gen_random_uuid(), a.id, k, 'adjust', 'admin', 'adjust:' || a.id || ':' || k,
       timestamptz '2026-07-01' + k * interval '1 hour', 'goodwill', 'bench'
  FROM loyalty_accounts a
  JOIN customers c ON c.tenant_id = a.tenant_id AND c.id = a.customer_id
  JOIN LATERAL generate_series(1, 30) k ON abs(hashtext(c.id::text)) % 100 = 0;

UPDATE loyalty_accounts a SET balance = e.total
  FROM (SELECT account_id, sum(delta) AS total FROM loyalty_ledger GROUP BY account_id) e
 WHERE e.account_id = a.id;
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def build(url: str, scale: float) -> tuple[str, str, str]:
    """Load the dataset; returns an API key of the biggest tenant, its id, and a customer of it
    with 20 orders (as a global id)."""
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
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("VACUUM ANALYZE"))
        # Flush the load's WAL now, not during the first server's run.
        await conn.execute(text("CHECKPOINT"))
    print(
        f"dataset: 50 tenants, {counts[0]:,} customers, {counts[1]:,} orders, {counts[2]:,} order lines "
        f"(40% in one tenant), built in {time.perf_counter() - started:.0f} s"
    )
    async with tenant_transaction(engine, tenant_id) as session:
        key = (await auth.create_api_key(session, name="bench", role=Role.VIEWER, actor="bench")).secret
    await engine.dispose()
    return key, str(tenant_id), global_id("Customer", customer_id)


@dataclass
class Server:
    """One server under test: how to start it, and each operation's request as wrk sends it."""

    name: str
    command: list[str]
    env: dict[str, str]
    requests: dict[str, tuple[str, str, dict[str, str]]]
    """operation -> (path, body, headers)"""


def start(server: Server) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = (
        {k: v for k, v in os.environ.items() if not k.startswith("BRANDLOOP_")}
        | server.env
        | {"PORT": str(port)}
    )
    command = [part.replace("{port}", str(port)) for part in server.command]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    path, body, headers = next(iter(server.requests.values()))
    for _ in range(600):
        try:
            if httpx.post(f"{base}{path}", content=body, headers=headers).status_code == 200:
                return process, base
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{server.name} did not start")


def wrk(
    base: str, path: str, body: str, headers: dict[str, str], seconds: int, workdir: Path
) -> dict[str, float]:
    script = workdir / "post.lua"
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(body)}"]
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    script.write_text("\n".join(lines) + "\n")
    out = subprocess.run(
        ["wrk", "-t2", "-c8", f"-d{seconds}s", "--latency", "-s", str(script), f"{base}{path}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in out:
        raise RuntimeError(out)

    def latency(label: str) -> float:
        value, unit = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "requests": float(re.search(r"(\d+) requests in", out).group(1)),  # type: ignore[union-attr]
        "p50": latency("50"),
        "p99": latency("99"),
    }


def _uuid(value: str) -> str:
    """A plain uuid from a Brandloop global id, or the uuid itself."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return str(parse_global_id(value)[1])


def canonical(operation: str, data: dict[str, Any]) -> Any:
    """The data every server must agree on, whatever its schema's shape."""
    amount = lambda v: int(v["amount"] if isinstance(v, dict) else v)  # noqa: E731
    if operation == "page":
        conn = data.get("customers") or data["allCustomers"]
        nodes = [e["node"] for e in conn["edges"]] if "edges" in conn else conn["nodes"]
        return conn["totalCount"], [
            (
                _uuid(c["id"]),
                c["displayName"],
                c["email"],
                sorted(
                    t["name"]
                    for t in c.get("tags")
                    or [x["tagByTenantIdAndTagId"] for x in c["customerTagsByTenantIdAndCustomerId"]["nodes"]]
                ),
                [
                    (_uuid(o["id"]), o["channel"], o["status"].lower(), amount(o["total"]))
                    for o in (
                        [e["node"] for e in c["orders"]["edges"]]
                        if isinstance(c.get("orders"), dict)
                        else c.get("orders") or c["ordersByTenantIdAndCustomerId"]["nodes"]
                    )
                ],
            )
            for c in nodes
        ]
    if operation == "customer":
        c = data.get("customer") or data["customerByTenantIdAndId"]
        orders = c.get("orders") or c["ordersByTenantIdAndCustomerId"]
        order_nodes = [e.get("node", e) for e in orders["edges"]] if "edges" in orders else orders["nodes"]
        identities = c.get("identities") or c["customerIdentitiesByTenantIdAndCustomerId"]["nodes"]
        return (
            _uuid(c["id"]),
            c["displayName"],
            c["email"],
            c["phone"],
            sorted((i["kind"].lower(), i["value"]) for i in identities),
            orders["totalCount"],
            _ledger(c),
            [
                (
                    _uuid(o["id"]),
                    o["externalId"],
                    o["status"].lower(),
                    amount(o["total"]),
                    [
                        (x["sku"], x["quantity"], amount(x["unitPrice"]))
                        for x in (o.get("lines") or o["orderLinesByTenantIdAndOrderId"]["nodes"])
                    ],
                )
                for o in order_nodes
            ],
        )
    conn = data["orders"] if "orders" in data else data["allOrders"]
    nodes = (
        [e["node"] for e in conn["edges"]]
        if isinstance(conn, dict) and "edges" in conn
        else conn
        if isinstance(conn, list)
        else conn["nodes"]
    )
    return [
        (
            _uuid(o["id"]),
            o["externalId"],
            o["status"].lower(),
            amount(o["total"]),
            _uuid((o.get("customer") or o["customerByTenantIdAndCustomerId"])["id"]),
        )
        for o in nodes
    ]


def _ledger(customer: dict[str, Any]) -> list[Any]:
    """Balance and ledger of each of the customer's accounts."""
    if "loyalty" in customer:
        return [
            (
                a["balance"]["total"],
                [(e["node"]["points"], e["node"]["kind"].lower()) for e in a["ledger"]["edges"]],
            )
            for a in customer["loyalty"]
        ]
    return [
        (
            int(a["balance"]),
            [
                (int(e["delta"]), e["kind"].lower())
                for e in a["loyaltyLedgersByTenantIdAndAccountId"]["nodes"]
            ],
        )
        for a in customer["loyaltyAccountsByTenantIdAndCustomerId"]["nodes"]
    ]


def servers(url: str, key: str, tenant_id: str, customer: str, workdir: Path) -> list[Server]:
    python = str(Path(sys.executable).parent)
    plain_url = make_url(url).set(drivername="postgresql").render_as_string(False)
    bearer = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    ours = {
        op: ("/graphql", json.dumps({"query": query, "variables": {"id": customer}}), bearer)
        for op, query in OPERATIONS.items()
    }
    brandloop_env = {
        "BRANDLOOP_DATABASE_URL": url,
        "BRANDLOOP_LOG_LEVEL": "WARNING",
        "BRANDLOOP_DATA_DIR": str(workdir),
    }
    tenant = {"X-Tenant-Id": tenant_id, "Content-Type": "application/json"}
    postgraphile = {
        op: (
            "/graphql",
            json.dumps({"query": query, "variables": {"id": _uuid(customer), "t": tenant_id}}),
            tenant,
        )
        for op, query in POSTGRAPHILE.items()
    }
    floor = {
        op: (f"/{op}" + (f"?id={_uuid(customer)}" if op == "customer" else ""), "", tenant)
        for op in OPERATIONS
    }
    return [
        Server(
            "Brandloop (planned)",
            [f"{python}/brandloop", "serve", "--port", "{port}"],
            brandloop_env | {"BRANDLOOP_PLANNER": "true"},
            ours,
        ),
        Server(
            "Brandloop (resolvers)",
            [f"{python}/brandloop", "serve", "--port", "{port}"],
            brandloop_env | {"BRANDLOOP_PLANNER": "false"},
            ours,
        ),
        Server(
            "PostGraphile 4",
            ["node", str(HERE / "postgraphile" / "server.js")],
            {"DATABASE_URL": plain_url},
            postgraphile,
        ),
        Server(
            "floor (SQL only)",
            [f"{python}/python", str(HERE / "floor_server.py"), "{port}"],
            {"DATABASE_URL": plain_url},
            floor,
        ),
    ]


def main(scale: float, seconds: int) -> None:
    if not (HERE / "postgraphile" / "node_modules").exists():
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--silent"], cwd=HERE / "postgraphile", check=True
        )
    server_url = os.environ.get("BRANDLOOP_DATABASE_URL")
    workdir = Path(tempfile.mkdtemp(prefix="brandloop-reads-"))
    server_url = server_url or embedded.start(workdir)
    name = f"brandloop_reads_{uuid.uuid4().hex[:8]}"
    admin_url = make_url(server_url).set(drivername="postgresql+asyncpg").render_as_string(False)
    url = make_url(server_url).set(drivername="postgresql+asyncpg", database=name).render_as_string(False)

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
        key, tenant_id, customer = asyncio.run(build(url, scale))
        results: dict[str, dict[str, dict[str, float]]] = {}
        answers: dict[str, dict[str, Any]] = {}
        for server in servers(url, key, tenant_id, customer, workdir):
            process, base = start(server)
            try:
                answers[server.name] = {
                    op: canonical(
                        op, httpx.post(f"{base}{path}", content=body, headers=headers).json()["data"]
                    )
                    for op, (path, body, headers) in server.requests.items()
                }
                results[server.name] = {}
                for op, (path, body, headers) in server.requests.items():
                    cpu = psutil.Process(process.pid).cpu_times()
                    result = wrk(base, path, body, headers, seconds, workdir)
                    spent = psutil.Process(process.pid).cpu_times()
                    result["cpu_ms"] = (
                        (spent.user + spent.system - cpu.user - cpu.system) * 1000 / result["requests"]
                    )
                    results[server.name][op] = result
            finally:
                process.send_signal(signal.SIGINT)
                process.wait(timeout=30)
        reference = answers["floor (SQL only)"]
        for name_, answer in answers.items():
            print(f"{name_}: same data as the floor: {answer == reference}")
        print(
            f"{'operation':10} {'server':24} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'app CPU ms/req':>15}"
        )
        for op in OPERATIONS:
            for name_, by_op in results.items():
                r = by_op[op]
                print(
                    f"{op:10} {name_:24} {r['rps']:7.0f} {r['p50']:7.1f} {r['p99']:7.1f} {r['cpu_ms']:15.2f}"
                )
            ours, graphile, floor = (
                results[n][op]["rps"] for n in ("Brandloop (planned)", "PostGraphile 4", "floor (SQL only)")
            )
            print(f"{op:10} Brandloop/PostGraphile {ours / graphile:.2f}, Brandloop/floor {ours / floor:.2f}")
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
