"""Consent, export and erasure, and the audit log that records them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from brandloop.auth.permissions import Role
from support import GraphQLClient, Tenant, buy

CONSENT = """
mutation($input: RecordConsentInput!) {
  recordConsent(input: $input) { consent { channel purpose granted source evidence actor } userErrors { field code } }
}"""
PERSON = {
    "name": "Zhang Secret",
    "email": "zhang.secret@example.cn",
    "phone": "+8613912345678",
    "buyerId": "sp-secret",
}


async def order(
    gql: GraphQLClient, tenant: Tenant, external_id: str, buyer: dict[str, Any] | None, total: int = 1000
) -> str | None:
    return await buy(gql, tenant, external_id, buyer, status="COMPLETED", total=total, product="Tea")


async def test_consent_is_appended_and_the_latest_is_in_force(gql: GraphQLClient, tenant: Tenant) -> None:
    customer = await order(gql, tenant, "C-1", PERSON)
    base = {"customerId": customer, "channel": "wechat", "purpose": "MARKETING", "source": "member_card"}
    granted = await gql.data(tenant.key, CONSENT, {"input": {**base, "granted": True, "evidence": "form v3"}})
    assert granted["recordConsent"]["consent"]["granted"] is True
    await gql.data(tenant.key, CONSENT, {"input": {**base, "purpose": "SURVEYS", "granted": True}})
    await gql.data(tenant.key, CONSENT, {"input": {**base, "granted": False, "source": "unsubscribe_link"}})
    data = await gql.data(
        tenant.key,
        "query($id: ID!) { customer(id: $id) { consents { purpose granted source } consentHistory { granted } } }",
        {"id": customer},
    )
    assert data["customer"]["consents"] == [
        {"purpose": "MARKETING", "granted": False, "source": "unsubscribe_link"},
        {"purpose": "SURVEYS", "granted": True, "source": "member_card"},
    ]
    assert [c["granted"] for c in data["customer"]["consentHistory"]] == [False, True, True]


async def test_bad_consent_input(gql: GraphQLClient, tenant: Tenant, other_tenant: Tenant) -> None:
    customer = await order(gql, tenant, "C-1", PERSON)
    foreign = await order(gql, other_tenant, "F-1", {"buyerId": "f"})
    cases = [
        ({"customerId": customer, "channel": "We Chat", "source": "x"}, "INVALID_CHANNEL"),
        ({"customerId": customer, "channel": "wechat", "source": ""}, "INVALID_LENGTH"),
        (
            {"customerId": customer, "channel": "wechat", "source": "x", "evidence": "e" * 1001},
            "INVALID_LENGTH",
        ),
        ({"customerId": foreign, "channel": "wechat", "source": "x"}, "NOT_FOUND"),
    ]
    for fields, code in cases:
        data = await gql.data(
            tenant.key, CONSENT, {"input": {"purpose": "MARKETING", "granted": True, **fields}}
        )
        assert [e["code"] for e in data["recordConsent"]["userErrors"]] == [code]


async def test_export_returns_everything_about_the_person(gql: GraphQLClient, tenant: Tenant) -> None:
    customer = await order(gql, tenant, "E-1", PERSON)
    await order(gql, tenant, "E-2", {"buyerId": "sp-secret"})
    await gql.data(
        tenant.key,
        CONSENT,
        {
            "input": {
                "customerId": customer,
                "channel": "wechat",
                "purpose": "SURVEYS",
                "granted": True,
                "source": "x",
            }
        },
    )
    data = await gql.data(
        tenant.key,
        "mutation($id: ID!) { exportCustomerData(input: {customerId: $id}) { data userErrors { code } } }",
        {"id": customer},
    )
    (profile,) = data["exportCustomerData"]["data"]["profiles"]
    assert profile["displayName"] == "Zhang Secret"
    assert {i["kind"] for i in profile["identities"]} == {"email", "phone", "shopee_buyer"}
    assert [o["externalId"] for o in profile["orders"]] == ["E-1", "E-2"]
    assert profile["orders"][0]["lines"] == [
        {"sku": "S", "productName": "Tea", "quantity": 1, "unitPrice": 1000}
    ]
    assert profile["consents"][0]["purpose"] == "surveys"


async def test_erasure_keeps_the_totals_and_no_personal_data(
    gql: GraphQLClient, tenant: Tenant, engine: AsyncEngine
) -> None:
    customer = await order(gql, tenant, "X-1", PERSON, total=1500)
    other = await order(
        gql,
        tenant,
        "X-2",
        {"name": "Zhang Alias", "email": "alias@example.cn", "buyerId": "sp-alias"},
        total=500,
    )
    await gql.data(
        tenant.key,
        "mutation($s: ID!, $m: [ID!]!) { mergeCustomers(input: {survivorId: $s, mergedIds: $m}) { userErrors { code } } }",
        {"s": customer, "m": [other]},
    )
    await gql.data(
        tenant.key,
        'mutation($id: ID!) { addCustomerTags(input: {ids: [$id], tags: ["expecting-baby"]}) { userErrors { code } } }',
        {"id": customer},
    )
    await gql.data(
        tenant.key,
        CONSENT,
        {
            "input": {
                "customerId": customer,
                "channel": "wechat",
                "purpose": "MARKETING",
                "granted": True,
                "source": "x",
                "evidence": "signed by Zhang Secret",
            }
        },
    )
    totals = "{ orders { totalCount edges { node { total { amount } customer { id } } } } }"
    before = await gql.data(tenant.key, totals)

    erased = await gql.data(
        tenant.key,
        "mutation($id: ID!) { eraseCustomer(input: {customerId: $id}) { customer { displayName email phone erasedAt identities { kind } tags { name } } userErrors { code } } }",
        {"id": customer},
    )
    assert erased["eraseCustomer"]["customer"] == {
        "displayName": "Erased customer",
        "email": None,
        "phone": None,
        "erasedAt": erased["eraseCustomer"]["customer"]["erasedAt"],
        "identities": [],
        "tags": [],
    }
    after = await gql.data(tenant.key, totals)
    assert after == before  # every order, its amount and its (now anonymous) customer are still there
    assert sum(e["node"]["total"]["amount"] for e in after["orders"]["edges"]) == 2000

    secrets = [
        "Zhang Secret",
        "zhang.secret@example.cn",
        "+8613912345678",
        "sp-secret",
        "Zhang Alias",
        "alias@example.cn",
        "sp-alias",
    ]
    async with engine.connect() as conn:
        columns = (
            await conn.execute(
                text(
                    """SELECT c.table_name, c.column_name FROM information_schema.columns c
                        WHERE c.table_schema = 'public' AND c.data_type IN ('text', 'character varying', 'jsonb')
                          AND EXISTS (SELECT 1 FROM information_schema.columns t WHERE t.table_schema = 'public'
                                       AND t.table_name = c.table_name AND t.column_name = 'tenant_id')"""
                )
            )
        ).all()
        for table, column in columns:
            for secret in secrets:
                found = await conn.scalar(
                    text(f'SELECT count(*) FROM "{table}" WHERE tenant_id = :t AND "{column}"::text LIKE :s'),
                    {"t": tenant.id, "s": f"%{secret}%"},
                )
                assert found == 0, (table, column, secret)

    # The channel sends the person again: they are not brought back.
    assert await order(gql, tenant, "X-3", PERSON) is None
    assert await order(gql, tenant, "X-1", PERSON, total=1500) == customer  # still the anonymous profile
    listed = await gql.data(tenant.key, "{ customers { edges { node { displayName } } } }")
    assert [e["node"]["displayName"] for e in listed["customers"]["edges"]] == ["Erased customer"]


async def test_privacy_actions_need_the_privacy_permission_and_are_audited(
    gql: GraphQLClient, tenant: Tenant
) -> None:
    customer = await order(gql, tenant, "A-1", PERSON)
    export = "mutation($id: ID!) { exportCustomerData(input: {customerId: $id}) { userErrors { code } } }"
    body = await gql(tenant.keys[Role.MARKETER], export, {"id": customer})
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    await gql.data(tenant.keys[Role.ADMIN], export, {"id": customer})
    await gql.data(
        tenant.keys[Role.ADMIN],
        "mutation($id: ID!) { eraseCustomer(input: {customerId: $id}) { userErrors { code } } }",
        {"id": customer},
    )
    await gql.data(
        tenant.key,
        'mutation { updateTenantSettings(input: {timezone: "Asia/Shanghai"}) { userErrors { code } } }',
    )
    log = await gql.data(
        tenant.keys[Role.ADMIN],
        "{ auditLog(first: 100) { totalCount edges { node { actor action targetType before after } } } }",
    )
    entries = [e["node"] for e in log["auditLog"]["edges"]]
    actions = [e["action"] for e in entries]
    assert actions[-3:] == ["customer.export", "customer.erase", "settings.update"]
    settings = entries[-1]
    assert settings["before"] == {"timezone": "UTC"} and settings["after"] == {"timezone": "Asia/Shanghai"}
    assert entries[-2]["after"]["identities"] == 3
    admin_prefix = tenant.keys[Role.ADMIN].split("_")[1]
    assert entries[-2]["actor"] == f"api_key:{admin_prefix}"
    body = await gql(tenant.keys[Role.MARKETER], "{ auditLog { totalCount } }")
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_an_erased_profile_cannot_be_edited_or_unmerged(gql: GraphQLClient, tenant: Tenant) -> None:
    a = await order(gql, tenant, "R-1", PERSON)
    b = await order(gql, tenant, "R-2", {"buyerId": "other-person"})
    await gql.data(
        tenant.key,
        "mutation($s: ID!, $m: [ID!]!) { mergeCustomers(input: {survivorId: $s, mergedIds: $m}) { userErrors { code } } }",
        {"s": a, "m": [b]},
    )
    await gql.data(
        tenant.key,
        "mutation($id: ID!) { eraseCustomer(input: {customerId: $id}) { userErrors { code } } }",
        {"id": a},
    )
    update = await gql.data(
        tenant.key,
        'mutation($id: ID!) { updateCustomer(input: {id: $id, displayName: "Back again"}) { userErrors { code } } }',
        {"id": a},
    )
    assert update["updateCustomer"]["userErrors"] == [{"code": "ERASED"}]
    unmerge = await gql.data(
        tenant.key,
        "mutation($id: ID!) { unmergeCustomer(input: {id: $id}) { userErrors { code } } }",
        {"id": b},
    )
    assert unmerge["unmergeCustomer"]["userErrors"] == [{"code": "ERASED"}]
