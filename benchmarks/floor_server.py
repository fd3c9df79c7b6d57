"""The floor for benchmarks/read_paths.py: one hand-written SQL statement per operation, its JSON
built by PostgreSQL, behind Starlette and asyncpg, under the same role and row-level security.

    DATABASE_URL=postgresql://... .venv/bin/python benchmarks/floor_server.py PORT

POST /<operation> with an `X-Tenant-Id` header (and `?id=` for the customer). Not a product: it
has no auth, no GraphQL, no validation; it shows what the database alone costs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

PAGE = """
SELECT json_build_object('customers', json_build_object(
  'totalCount', (SELECT count(*) FROM customers WHERE merged_into_id IS NULL),
  'edges', coalesce((SELECT json_agg(json_build_object('node', json_build_object(
      'id', c.id, 'displayName', c.display_name, 'email', c.email, 'lifecycleStage', upper(c.lifecycle_stage),
      'tags', coalesce((SELECT json_agg(json_build_object('name', t.name) ORDER BY t.name)
                         FROM customer_tags ct JOIN tags t ON t.id = ct.tag_id WHERE ct.customer_id = c.id), '[]'),
      'orders', coalesce((SELECT json_agg(json_build_object('id', o.id, 'channel', o.channel, 'status', upper(o.status),
                                  'placedAt', o.placed_at, 'total', o.total, 'currency', o.currency) ORDER BY o.id)
                           FROM (SELECT * FROM orders WHERE customer_id = c.id ORDER BY id LIMIT 5) o), '[]')
    )) ORDER BY c.id)
    FROM (SELECT * FROM customers WHERE merged_into_id IS NULL ORDER BY id LIMIT 50) c), '[]')))::text
"""
CUSTOMER = """
SELECT json_build_object('customer', (SELECT json_build_object(
  'id', c.id, 'displayName', c.display_name, 'email', c.email, 'phone', c.phone, 'createdAt', c.created_at,
  'identities', coalesce((SELECT json_agg(json_build_object('kind', upper(i.kind), 'value', i.value) ORDER BY i.kind, i.value)
                           FROM customer_identities i WHERE i.customer_id = c.id), '[]'),
  'orders', json_build_object(
     'totalCount', (SELECT count(*) FROM orders WHERE customer_id = c.id),
     'edges', coalesce((SELECT json_agg(json_build_object('id', o.id, 'externalId', o.external_id, 'status', upper(o.status),
                         'placedAt', o.placed_at, 'total', o.total, 'currency', o.currency,
                         'lines', (SELECT json_agg(json_build_object('sku', l.sku, 'quantity', l.quantity, 'unitPrice', l.unit_price)
                                                   ORDER BY l.line_no) FROM order_lines l WHERE l.order_id = o.id)) ORDER BY o.id)
                        FROM (SELECT * FROM orders WHERE customer_id = c.id ORDER BY id LIMIT 20) o), '[]')),
  'loyalty', coalesce((SELECT json_agg(json_build_object('balance', json_build_object('total', a.balance),
     'ledger', json_build_object('edges', coalesce((SELECT json_agg(json_build_object('node', json_build_object(
                  'points', e.delta, 'kind', upper(e.kind), 'effectiveAt', e.effective_at)) ORDER BY e.id)
                FROM (SELECT * FROM loyalty_ledger WHERE account_id = a.id ORDER BY id LIMIT 50) e), '[]')))
     ORDER BY a.program_id) FROM loyalty_accounts a WHERE a.customer_id = c.id), '[]'))
  FROM customers c WHERE c.id = $1))::text
"""
ORDERS = """
SELECT json_build_object('orders', coalesce((SELECT json_agg(json_build_object(
    'id', o.id, 'externalId', o.external_id, 'status', upper(o.status), 'placedAt', o.placed_at, 'total', o.total,
    'currency', o.currency,
    'customer', (SELECT json_build_object('id', c.id, 'displayName', c.display_name) FROM customers c WHERE c.id = o.customer_id)
  ) ORDER BY o.id)
  FROM (SELECT * FROM orders WHERE channel = 'shopee' AND placed_at >= '2026-01-01T00:00:00Z'
          AND placed_at < '2026-07-01T00:00:00Z' ORDER BY id LIMIT 50) o), '[]'))::text
"""
STATEMENTS = {"page": PAGE, "customer": CUSTOMER, "orders": ORDERS}
ENTER = "SELECT set_config('role', 'brandloop_app', true), set_config('app.tenant_id', $1, true)"


async def operation(request: Request) -> Response:
    pool: asyncpg.Pool = request.app.state.pool
    name = request.path_params["name"]
    args = [request.query_params["id"]] if name == "customer" else []
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute(ENTER, request.headers["x-tenant-id"])
        body = await connection.fetchval(STATEMENTS[name], *args)
    return Response('{"data":' + body + "}", media_type="application/json")


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    async with asyncpg.create_pool(
        os.environ["DATABASE_URL"],
        min_size=8,
        max_size=8,
        server_settings={"plan_cache_mode": "force_custom_plan"},
    ) as pool:
        app.state.pool = pool
        yield


app = Starlette(routes=[Route("/{name}", operation, methods=["POST"])], lifespan=lifespan)

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
