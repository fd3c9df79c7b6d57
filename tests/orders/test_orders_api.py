"""Orders through GraphQL: idempotent recording, validation, reads, reporting currency."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from brandloop.auth.permissions import Role
from support import GraphQLClient, Tenant

RECORD = """
mutation($input: RecordOrderInput!) {
  recordOrder(input: $input) {
    outcome
    order {
      id channel externalId status placedAt updatedAt
      total { amount currency } subtotal { amount } refunded { amount }
      lines { lineNo sku productName category quantity unitPrice { amount } lineTotal { amount } }
      customer { id displayName email phone identities { kind value source } }
    }
    userErrors { field code message }
  }
}"""


def order(external_id: str = "SO-1", **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "channel": "shopee",
        "externalId": external_id,
        "status": "PAID",
        "currency": "CNY",
        "total": 25900,
        "placedAt": "2026-11-01T10:00:00+08:00",
        "lines": [
            {
                "sku": "TEA-01",
                "productName": "Oolong 100g",
                "quantity": 2,
                "unitPrice": 9900,
                "category": "tea",
            },
            {"sku": "CUP-02", "productName": "Tea cup", "quantity": 1, "unitPrice": 6100},
        ],
        "buyer": {"name": "Li Wei", "buyerId": "sp-778", "phone": "+86 138 0013 8000"},
    }
    base.update(overrides)
    return base


async def record(gql: GraphQLClient, key: str, data: dict[str, Any]) -> dict[str, Any]:
    return (await gql.data(key, RECORD, {"input": data}))["recordOrder"]


async def test_record_creates_an_order_its_lines_and_its_customer(gql: GraphQLClient, tenant: Tenant) -> None:
    payload = await record(gql, tenant.key, order())
    assert payload["userErrors"] == [] and payload["outcome"] == "CREATED"
    stored = payload["order"]
    assert stored["total"] == {"amount": 25900, "currency": "CNY"}
    assert stored["subtotal"] == {"amount": 2 * 9900 + 6100}  # defaults to the sum of the lines
    assert [(x["lineNo"], x["sku"], x["lineTotal"]["amount"]) for x in stored["lines"]] == [
        (1, "TEA-01", 19800),
        (2, "CUP-02", 6100),
    ]
    customer = stored["customer"]
    assert customer["displayName"] == "Li Wei"
    assert customer["phone"] == "+8613800138000"
    assert sorted((i["kind"], i["value"], i["source"]) for i in customer["identities"]) == [
        ("PHONE", "+8613800138000", "shopee"),
        ("SHOPEE_BUYER", "sp-778", "shopee"),
    ]


async def test_the_same_order_again_changes_nothing(gql: GraphQLClient, tenant: Tenant) -> None:
    first = await record(gql, tenant.key, order())
    for _ in range(3):
        again = await record(gql, tenant.key, order())
        assert again["outcome"] == "UNCHANGED"
        assert again["order"]["id"] == first["order"]["id"]
    data = await gql.data(tenant.key, "{ orders { totalCount } customers { totalCount } }")
    assert data == {"orders": {"totalCount": 1}, "customers": {"totalCount": 1}}


async def test_a_newer_update_replaces_and_an_older_one_is_ignored(
    gql: GraphQLClient, tenant: Tenant
) -> None:
    await record(gql, tenant.key, order(updatedAt="2026-11-02T00:00:00Z"))
    newer = await record(
        gql,
        tenant.key,
        order(
            status="REFUNDED",
            refunded=25900,
            updatedAt="2026-11-05T00:00:00Z",
            lines=[{"sku": "TEA-01", "productName": "Oolong 100g", "quantity": 1, "unitPrice": 25900}],
        ),
    )
    assert newer["outcome"] == "UPDATED"
    assert newer["order"]["status"] == "REFUNDED"
    assert [x["sku"] for x in newer["order"]["lines"]] == ["TEA-01"]
    older = await record(gql, tenant.key, order(status="SHIPPED", updatedAt="2026-11-03T00:00:00Z"))
    assert older["outcome"] == "UNCHANGED"
    assert older["order"]["status"] == "REFUNDED"
    assert older["order"]["refunded"] == {"amount": 25900}
    assert len(older["order"]["lines"]) == 1


async def test_concurrent_deliveries_of_one_new_order_store_it_once(
    gql: GraphQLClient, tenant: Tenant
) -> None:
    results = await asyncio.gather(*(record(gql, tenant.key, order("SO-RACE")) for _ in range(5)))
    assert sorted(r["outcome"] for r in results) == ["CREATED"] + ["UNCHANGED"] * 4
    assert len({r["order"]["id"] for r in results}) == 1
    assert len({r["order"]["customer"]["id"] for r in results}) == 1
    data = await gql.data(tenant.key, "{ orders { totalCount } customers { totalCount } }")
    assert data == {"orders": {"totalCount": 1}, "customers": {"totalCount": 1}}


@pytest.mark.parametrize(
    ("overrides", "field", "code"),
    [
        ({"currency": "XYZ"}, "currency", "INVALID_CURRENCY"),
        ({"channel": "Shop ee!"}, "channel", "INVALID_CHANNEL"),
        ({"externalId": ""}, "externalId", "INVALID_LENGTH"),
        ({"externalId": "x" * 129}, "externalId", "INVALID_LENGTH"),
        ({"total": -1}, "total", "INVALID_AMOUNT"),
        ({"refunded": 30000}, "refunded", "INVALID_AMOUNT"),
        ({"placedAt": "2026-11-01T10:00:00"}, "placedAt", "MISSING_TIMEZONE"),
        (
            {"lines": [{"sku": "A", "productName": "B", "quantity": 0, "unitPrice": 1}]},
            "lines.1.quantity",
            "INVALID_QUANTITY",
        ),
        (
            {"lines": [{"sku": "", "productName": "B", "quantity": 1, "unitPrice": 1}]},
            "lines.1.sku",
            "INVALID_LENGTH",
        ),
        (
            {"lines": [{"sku": "A", "productName": "B", "quantity": 1, "unitPrice": 1}] * 501},
            "lines",
            "INVALID_COUNT",
        ),
        ({"buyer": {"email": "not-an-email"}}, "buyer.email", "INVALID_EMAIL"),
        ({"buyer": {"phone": "12345"}}, "buyer.phone", "INVALID_PHONE"),
    ],
)
async def test_bad_orders_are_refused_whole(
    gql: GraphQLClient, tenant: Tenant, overrides: dict[str, Any], field: str, code: str
) -> None:
    payload = await record(gql, tenant.key, order(**overrides))
    assert payload["order"] is None and payload["outcome"] is None
    assert (field, code) in [(e["field"], e["code"]) for e in payload["userErrors"]]
    data = await gql.data(tenant.key, "{ orders { totalCount } customers { totalCount } }")
    assert data == {"orders": {"totalCount": 0}, "customers": {"totalCount": 0}}


async def test_amounts_must_be_whole_minor_units(gql: GraphQLClient, tenant: Tenant) -> None:
    body = await gql(tenant.key, RECORD, {"input": order(total=259.5)})
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert "minor units" in body["errors"][0]["message"]


async def test_an_order_without_a_usable_buyer_stays_unattached(gql: GraphQLClient, tenant: Tenant) -> None:
    anonymous = await record(gql, tenant.key, order("SO-A", buyer=None))
    placeholder = await record(
        gql, tenant.key, order("SO-B", buyer={"name": "X", "email": "noreply@example.com"})
    )
    assert anonymous["order"]["customer"] is None
    assert placeholder["order"]["customer"] is None
    assert (await gql.data(tenant.key, "{ customers { totalCount } }"))["customers"]["totalCount"] == 0


async def test_filters_and_nested_reads(gql: GraphQLClient, tenant: Tenant) -> None:
    a = await record(gql, tenant.key, order("A", placedAt="2026-10-01T00:00:00Z"))
    await record(
        gql, tenant.key, order("B", channel="tiktok", status="COMPLETED", placedAt="2026-10-15T00:00:00Z")
    )
    await record(gql, tenant.key, order("C", placedAt="2026-11-01T00:00:00Z", buyer={"email": "x@shop.cn"}))
    query = (
        """query($f: OrderFilterInput) { orders(filter: $f) { totalCount edges { node { externalId } } } }"""
    )

    async def ids(flt: dict[str, Any]) -> list[str]:
        data = await gql.data(tenant.key, query, {"f": flt})
        return [e["node"]["externalId"] for e in data["orders"]["edges"]]

    assert await ids({"channel": "shopee"}) == ["A", "C"]
    assert await ids({"status": "COMPLETED"}) == ["B"]
    assert await ids({"placedAfter": "2026-10-10T00:00:00Z", "placedBefore": "2026-11-01T00:00:00Z"}) == ["B"]
    customer_id = a["order"]["customer"]["id"]
    assert await ids({"customerId": customer_id}) == ["A", "B"]  # same buyer id and phone on both
    nested = await gql.data(
        tenant.key,
        """query($id: ID!) { customer(id: $id) { orders(first: 1) { totalCount pageInfo { hasNextPage }
             edges { node { externalId } } } } node(id: $id) { id } }""",
        {"id": customer_id},
    )
    assert nested["customer"]["orders"]["totalCount"] == 2
    assert nested["customer"]["orders"]["pageInfo"]["hasNextPage"] is True
    one = await gql.data(
        tenant.key, "query($id: ID!) { order(id: $id) { externalId } }", {"id": a["order"]["id"]}
    )
    assert one["order"] == {"externalId": "A"}


async def test_customers_page_with_their_orders_batches_the_orders(
    gql: GraphQLClient, tenant: Tenant
) -> None:
    for n in range(6):
        await record(gql, tenant.key, order(f"O{n}", buyer={"buyerId": f"b{n % 3}"}))
    data = await gql.data(
        tenant.key,
        "{ customers { edges { node { orders(first: 5) { totalCount edges { node { externalId } } } } } } }",
    )
    per_customer = [
        [e["node"]["externalId"] for e in c["node"]["orders"]["edges"]] for c in data["customers"]["edges"]
    ]
    assert per_customer == [["O0", "O3"], ["O1", "O4"], ["O2", "O5"]]


async def test_orders_are_isolated_between_tenants(
    gql: GraphQLClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs = await record(gql, other_tenant.key, order("SECRET"))
    data = await gql.data(
        tenant.key,
        "query($id: ID!) { order(id: $id) { id } node(id: $id) { id } orders { totalCount } }",
        {"id": theirs["order"]["id"]},
    )
    assert data == {"order": None, "node": None, "orders": {"totalCount": 0}}
    # The same channel order id is a separate order in another tenant.
    mine = await record(gql, tenant.key, order("SECRET"))
    assert mine["outcome"] == "CREATED"


async def test_reporting_currency_uses_the_rate_of_the_orders_day(gql: GraphQLClient, tenant: Tenant) -> None:
    settings = await gql.data(
        tenant.key,
        'mutation { updateTenantSettings(input: {reportingCurrency: "cny", timezone: "Asia/Shanghai"}) '
        "{ settings { reportingCurrency timezone } userErrors { code } } }",
    )
    assert settings["updateTenantSettings"]["settings"] == {
        "reportingCurrency": "CNY",
        "timezone": "Asia/Shanghai",
    }
    rates = await gql.data(
        tenant.key,
        """mutation { setExchangeRates(input: {rates: [
             {currency: "USD", day: "2026-11-01", rate: "7.10"},
             {currency: "USD", day: "2026-11-02", rate: "7.20"},
             {currency: "JPY", day: "2026-10-01", rate: "0.0475"}]}) { count userErrors { code } } }""",
    )
    assert rates["setExchangeRates"] == {"count": 3, "userErrors": []}
    query = """mutation($input: RecordOrderInput!) { recordOrder(input: $input) {
        order { totalInReportingCurrency { amount currency rate rateDay } } } }"""

    async def converted(**overrides: Any) -> dict[str, Any] | None:
        data = await gql.data(
            tenant.key,
            query,
            {
                "input": order(
                    f"FX-{len(str(overrides))}-{overrides['currency']}-{overrides['placedAt']}", **overrides
                )
            },
        )
        return data["recordOrder"]["order"]["totalInReportingCurrency"]

    # 2026-11-01 23:30 in Shanghai is still the 1st there, though the 1st 15:30 in UTC.
    assert await converted(currency="USD", total=1000, placedAt="2026-11-01T15:30:00Z") == {
        "amount": 7100,
        "currency": "CNY",
        "rate": "7.100000000000",
        "rateDay": "2026-11-01",
    }
    assert (await converted(currency="USD", total=1000, placedAt="2026-11-01T16:30:00Z"))["amount"] == 7200
    assert (await converted(currency="USD", total=1000, placedAt="2026-11-20T00:00:00Z"))[
        "rateDay"
    ] == "2026-11-02"
    # Yen have no minor unit: 1,000 yen at 0.0475 is 47.50 yuan.
    assert (await converted(currency="JPY", total=1000, placedAt="2026-11-01T00:00:00Z"))["amount"] == 4750
    assert await converted(currency="USD", total=1000, placedAt="2026-10-01T00:00:00Z") is None  # no rate yet
    assert (await converted(currency="CNY", total=1000, placedAt="2026-10-01T00:00:00Z"))["rateDay"] is None


async def test_bad_rates_and_settings_are_user_errors(gql: GraphQLClient, tenant: Tenant) -> None:
    rates = await gql.data(
        tenant.key,
        'mutation { setExchangeRates(input: {rates: [{currency: "ZZZ", day: "2026-11-01", rate: "-1"}]}) '
        "{ count userErrors { field code } } }",
    )
    assert rates["setExchangeRates"]["userErrors"] == [
        {"field": "rates.1.currency", "code": "INVALID_CURRENCY"},
        {"field": "rates.1.rate", "code": "INVALID_RATE"},
    ]
    settings = await gql.data(
        tenant.key,
        'mutation { updateTenantSettings(input: {timezone: "Mars/Base", dormantAfterDays: 200}) '
        "{ settings { timezone } userErrors { field code } } }",
    )
    assert {e["code"] for e in settings["updateTenantSettings"]["userErrors"]} == {
        "INVALID_TIMEZONE",
        "INVALID_THRESHOLDS",
    }
    current = await gql.data(tenant.key, "{ tenantSettings { timezone dormantAfterDays churnedAfterDays } }")
    assert current["tenantSettings"] == {"timezone": "UTC", "dormantAfterDays": 90, "churnedAfterDays": 180}


async def test_only_writers_record_and_only_admins_set_rates(gql: GraphQLClient, tenant: Tenant) -> None:
    body = await gql(tenant.keys[Role.ANALYST], RECORD, {"input": order()})
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    body = await gql(
        tenant.keys[Role.MARKETER],
        'mutation { setExchangeRates(input: {rates: [{currency: "USD", day: "2026-11-01", rate: "7"}]}) { count } }',
    )
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
