"""One tenant never sees or changes another's data: through every GraphQL path, and in SQL."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from brandloop.db.session import APP_ROLE, new_session, tenant_transaction
from support import GraphQLClient, Tenant

CREATE = """mutation($name: String!, $email: String) {
  createCustomer(input: {displayName: $name, email: $email}) { customer { id } userErrors { code } }
}"""


@pytest.fixture
async def foreign_customer(gql: GraphQLClient, other_tenant: Tenant) -> str:
    """A customer of the other tenant, tagged, whose global id tenant A tries to use."""
    data = await gql.data(other_tenant.key, CREATE, {"name": "Secret Person", "email": "secret@example.com"})
    customer_id = data["createCustomer"]["customer"]["id"]
    await gql.data(
        other_tenant.key,
        'mutation($id: ID!) { addCustomerTags(input: {ids: [$id], tags: ["secret-tag"]}) { userErrors { code } } }',
        {"id": customer_id},
    )
    return customer_id


async def test_lists_filters_and_search_show_nothing_of_another_tenant(
    gql: GraphQLClient, tenant: Tenant, foreign_customer: str
) -> None:
    await gql.data(tenant.key, CREATE, {"name": "Mine"})
    query = """query($f: CustomerFilterInput) {
      customers(first: 100, filter: $f) { totalCount edges { node { id displayName } } }
    }"""
    for flt in [None, {"search": "Secret"}, {"search": "secret@example.com"}, {"tags": ["secret-tag"]}]:
        data = await gql.data(tenant.key, query, {"f": flt})
        ids = [e["node"]["id"] for e in data["customers"]["edges"]]
        assert foreign_customer not in ids
        assert data["customers"]["totalCount"] == (1 if flt is None else 0)
    tags = await gql.data(tenant.key, "{ tags(first: 100) { totalCount edges { node { name } } } }")
    assert tags["tags"] == {"totalCount": 0, "edges": []}


async def test_another_tenants_global_id_reads_as_null(
    gql: GraphQLClient, tenant: Tenant, foreign_customer: str
) -> None:
    data = await gql.data(
        tenant.key,
        "query($id: ID!) { node(id: $id) { id } customer(id: $id) { id displayName } }",
        {"id": foreign_customer},
    )
    assert data == {"node": None, "customer": None}


async def test_another_tenants_customer_cannot_be_changed(
    gql: GraphQLClient, tenant: Tenant, other_tenant: Tenant, foreign_customer: str
) -> None:
    attempts = {
        "updateCustomer": 'updateCustomer(input: {id: $id, displayName: "Hijacked"}) { userErrors { code } }',
        "deleteCustomer": "deleteCustomer(input: {id: $id}) { userErrors { code } }",
        "addCustomerTags": 'addCustomerTags(input: {ids: [$id], tags: ["x"]}) { userErrors { code } }',
        "removeCustomerTags": 'removeCustomerTags(input: {ids: [$id], tags: ["secret-tag"]}) { userErrors { code } }',
    }
    for name, selection in attempts.items():
        data = await gql.data(tenant.key, f"mutation($id: ID!) {{ {selection} }}", {"id": foreign_customer})
        assert data[name]["userErrors"] == [{"code": "NOT_FOUND"}], name
    # The owner still sees it whole.
    data = await gql.data(
        other_tenant.key,
        "query($id: ID!) { customer(id: $id) { displayName tags { name } } }",
        {"id": foreign_customer},
    )
    assert data["customer"] == {"displayName": "Secret Person", "tags": [{"name": "secret-tag"}]}


async def test_email_uniqueness_does_not_leak_across_tenants(
    gql: GraphQLClient, tenant: Tenant, foreign_customer: str
) -> None:
    data = await gql.data(tenant.key, CREATE, {"name": "Me", "email": "secret@example.com"})
    assert data["createCustomer"]["userErrors"] == []


async def test_another_tenants_api_keys_are_invisible_and_irrevocable(
    gql: GraphQLClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs = await gql.data(other_tenant.key, "{ apiKeys(first: 100) { edges { node { id prefix } } } }")
    their_ids = [e["node"]["id"] for e in theirs["apiKeys"]["edges"]]
    mine = await gql.data(tenant.key, "{ apiKeys(first: 100) { edges { node { id } } } }")
    assert not set(their_ids) & {e["node"]["id"] for e in mine["apiKeys"]["edges"]}
    data = await gql.data(
        tenant.key,
        "mutation($id: ID!) { revokeApiKey(input: {id: $id}) { userErrors { code } } }",
        {"id": their_ids[0]},
    )
    assert data["revokeApiKey"]["userErrors"] == [{"code": "NOT_FOUND"}]
    still = await gql.data(other_tenant.key, "{ viewer { role } }")
    assert still["viewer"]["role"] == "OWNER"


# -- in SQL, as the application role -----------------------------------------------------------

TENANT_TABLES = [
    "api_keys",
    "audit_log",
    "channel_partners",
    "conflict_events",
    "conflict_evidence",
    "conflict_watermarks",
    "conflicts",
    "connections",
    "consents",
    "customer_identities",
    "customer_merges",
    "customer_tags",
    "customers",
    "dashboards",
    "erased_identities",
    "exchange_rates",
    "identity_blocklist",
    "kpi_alerts_seen",
    "kpi_customer_days",
    "kpi_points_days",
    "kpi_survey_days",
    "kpi_targets",
    "kpi_tier_days",
    "kpi_watermarks",
    "listing_observations",
    "loyalty_accounts",
    "loyalty_ledger",
    "loyalty_lots",
    "loyalty_order_valuations",
    "loyalty_programs",
    "loyalty_redemptions",
    "loyalty_rewards",
    "loyalty_rule_versions",
    "loyalty_tier_changes",
    "loyalty_tiers",
    "marketing_spend",
    "nps_invitations",
    "nps_responses",
    "nps_surveys",
    "nps_tasks",
    "order_lines",
    "orders",
    "price_exceptions",
    "price_policies",
    "sync_checkpoints",
    "tags",
    "tenant_settings",
    "webhook_events",
]


async def test_without_a_tenant_the_app_role_sees_no_rows(
    engine: AsyncEngine, gql: GraphQLClient, foreign_customer: str
) -> None:
    async with new_session(engine) as session, session.begin():
        await session.execute(text(f"SET LOCAL ROLE {APP_ROLE}"))
        for table in [*TENANT_TABLES, "tenants"]:
            count = await session.scalar(text(f"SELECT count(*) FROM {table}"))
            assert count == 0, table


async def test_a_stale_empty_tenant_setting_matches_nothing(
    engine: AsyncEngine, foreign_customer: str
) -> None:
    # On a pooled connection a once-set local setting reads back as '' afterwards.
    async with new_session(engine) as session, session.begin():
        await session.execute(text(f"SET LOCAL ROLE {APP_ROLE}"))
        await session.execute(text("SELECT set_config('app.tenant_id', '', true)"))
        assert await session.scalar(text("SELECT count(*) FROM customers")) == 0


async def test_the_app_role_cannot_insert_another_tenants_rows(
    engine: AsyncEngine, tenant: Tenant, other_tenant: Tenant
) -> None:
    with pytest.raises(DBAPIError, match="row-level security"):
        async with tenant_transaction(engine, tenant.id) as session:
            await session.execute(
                text("INSERT INTO customers (tenant_id, id, display_name) VALUES (:t, :id, 'Planted')"),
                {"t": other_tenant.id, "id": uuid.uuid4()},
            )


async def test_the_app_role_cannot_move_a_row_to_another_tenant(
    engine: AsyncEngine, gql: GraphQLClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    await gql.data(tenant.key, CREATE, {"name": "Mover"})
    with pytest.raises(DBAPIError, match="row-level security"):
        async with tenant_transaction(engine, tenant.id) as session:
            await session.execute(text("UPDATE customers SET tenant_id = :t"), {"t": other_tenant.id})


@pytest.mark.parametrize(
    ("setup", "statement"),
    [
        ("SET LOCAL row_security = off", "SELECT count(*) FROM customers"),
        (None, "ALTER TABLE customers DISABLE ROW LEVEL SECURITY"),
        (None, "ALTER TABLE customers NO FORCE ROW LEVEL SECURITY"),
        (None, "DROP POLICY tenant_isolation ON customers"),
        (None, "INSERT INTO tenants (id, slug, name) VALUES (gen_random_uuid(), 'rogue', 'Rogue')"),
        (None, "DELETE FROM api_keys"),
    ],
)
async def test_the_app_role_cannot_switch_isolation_off(
    engine: AsyncEngine, tenant: Tenant, setup: str | None, statement: str
) -> None:
    with pytest.raises(DBAPIError):
        async with tenant_transaction(engine, tenant.id) as session:
            if setup:
                await session.execute(text(setup))
            await session.execute(text(statement))


async def test_every_tenant_table_is_forced_under_rls_with_tenant_first_in_the_key(
    engine: AsyncEngine,
) -> None:
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    """
                    SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
                           (SELECT a.attname FROM pg_index i
                              JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                             WHERE i.indrelid = c.oid AND i.indisprimary) AS first_key_column,
                           (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid) AS policies,
                           pg_get_userbyid(c.relowner) AS owner
                      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                     WHERE n.nspname = 'public' AND c.relkind = 'r'
                       AND EXISTS (SELECT 1 FROM pg_attribute a
                                    WHERE a.attrelid = c.oid AND a.attname = 'tenant_id')
                    """
                )
            )
        ).all()
        foreign_keys = (
            await conn.execute(
                text(
                    """
                    SELECT conrelid::regclass::text, confrelid::regclass::text,
                           (SELECT array_agg(a.attname::text) FROM pg_attribute a
                             WHERE a.attrelid = conrelid AND a.attnum = ANY(conkey))
                      FROM pg_constraint WHERE contype = 'f' AND confrelid::regclass::text <> 'tenants'
                    """
                )
            )
        ).all()
        role = (
            await conn.execute(
                text("SELECT rolsuper, rolbypassrls, rolcanlogin FROM pg_roles WHERE rolname = :r"),
                {"r": APP_ROLE},
            )
        ).one()
        owned = await conn.scalar(
            text(
                "SELECT count(*) FROM pg_class WHERE relowner = (SELECT oid FROM pg_roles WHERE rolname = :r)"
            ),
            {"r": APP_ROLE},
        )
    assert sorted(r.relname for r in rows) == sorted(TENANT_TABLES)
    for row in rows:
        assert row.relrowsecurity and row.relforcerowsecurity, row.relname
        assert row.first_key_column == "tenant_id", row.relname
        assert row.policies >= 1, row.relname
        assert row.owner != APP_ROLE
    for table, referenced, columns in foreign_keys:
        assert "tenant_id" in columns, (table, referenced)
    assert tuple(role) == (False, False, False)
    assert owned == 0
