"""The schema stays ready to be distributed by tenant (Citus, docs/scaling.md): read from the live
catalog after the migrations, so a new table or index that would not distribute fails here."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

REFERENCE_TABLES = {"api_keys"}
"""Tenant tables replicated whole to every node instead of distributed: an API key is found by
its prefix before its tenant is known (a unique prefix across tenants)."""

TENANT_TABLES = text(
    """
    SELECT c.oid, c.relname, c.relrowsecurity AND c.relforcerowsecurity AS forced,
           EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid) AS has_policy
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = 'public' AND c.relkind = 'r'
       AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id')
    """
)
INDEXES = text(
    """
    SELECT c.relname AS table_name, i.relname AS index_name, x.indisunique AS is_unique,
           (SELECT a.attname FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum = x.indkey[0]) AS first,
           EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum = ANY(x.indkey)
                    AND a.attname = 'tenant_id') AS has_tenant
      FROM pg_index x JOIN pg_class c ON c.oid = x.indrelid JOIN pg_class i ON i.oid = x.indexrelid
     WHERE c.oid = ANY(:tables)
    """
)
FOREIGN_KEYS = text(
    """
    SELECT conname, conrelid::regclass::text AS from_table, confrelid::regclass::text AS to_table,
           (SELECT array_agg(a.attname::text ORDER BY k.n) FROM unnest(conkey) WITH ORDINALITY k(num, n)
              JOIN pg_attribute a ON a.attrelid = conrelid AND a.attnum = k.num) AS columns,
           (SELECT array_agg(a.attname::text ORDER BY k.n) FROM unnest(confkey) WITH ORDINALITY k(num, n)
              JOIN pg_attribute a ON a.attrelid = confrelid AND a.attnum = k.num) AS referenced
      FROM pg_constraint WHERE contype = 'f' AND conrelid = ANY(:tables) AND confrelid = ANY(:tables)
    """
)


async def test_every_tenant_table_distributes_by_tenant(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        tables = (await conn.execute(TENANT_TABLES)).all()
        oids = [t.oid for t in tables]
        indexes = (await conn.execute(INDEXES, {"tables": oids})).all()
        foreign_keys = (await conn.execute(FOREIGN_KEYS, {"tables": oids})).all()
    assert len(tables) > 30
    problems = []
    for table in tables:
        if not (table.forced and table.has_policy):
            problems.append(f"{table.relname}: no forced row-level security policy")
    for index in indexes:
        if index.table_name in REFERENCE_TABLES:
            continue
        if index.first != "tenant_id":
            problems.append(f"{index.index_name} on {index.table_name} does not lead with tenant_id")
        if index.is_unique and not index.has_tenant:
            problems.append(f"{index.index_name} on {index.table_name} is unique without tenant_id")
    for fk in foreign_keys:
        if {fk.from_table, fk.to_table} & REFERENCE_TABLES:
            continue
        pairs = dict(zip(fk.columns, fk.referenced, strict=True))
        if pairs.get("tenant_id") != "tenant_id":
            problems.append(f"{fk.conname}: {fk.from_table} -> {fk.to_table} without tenant_id = tenant_id")
    assert problems == []
