"""Lifecycle, RFM and value tiers on a dataset computed by hand (see docs/segmentation.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from support import GraphQLClient, Tenant

AS_OF = datetime(2026, 12, 1, tzinfo=UTC)
RECORD = "mutation($input: RecordOrderInput!) { recordOrder(input: $input) { userErrors { field code } } }"

# buyer: [(days before AS_OF, status, total, refunded, currency)]
ORDERS: dict[str, list[tuple[int, str, int, int, str]]] = {
    "A": [
        (5, "COMPLETED", 10000, 0, "CNY"),
        (20, "COMPLETED", 10000, 0, "CNY"),
        (40, "COMPLETED", 10000, 0, "CNY"),
        (60, "COMPLETED", 10000, 0, "CNY"),
        (100, "COMPLETED", 10000, 0, "CNY"),
    ],
    "B": [(10, "PAID", 3000, 0, "CNY")],
    "C": [(30, "SHIPPED", 2000, 0, "CNY"), (200, "COMPLETED", 2000, 0, "CNY")],
    "D": [(120, "COMPLETED", 8000, 0, "CNY"), (150, "COMPLETED", 8000, 0, "CNY")],
    "E": [(200, "COMPLETED", 5000, 0, "CNY")],
    "F": [(400, "COMPLETED", 9000, 0, "CNY")],
    "G": [(15, "CANCELLED", 1000, 0, "CNY"), (15, "REFUNDED", 20000, 20000, "CNY")],
    "H": [(3, "PARTIALLY_REFUNDED", 7000, 2000, "CNY")],
    "I": [
        (45, "COMPLETED", 6000, 0, "CNY"),
        (50, "COMPLETED", 6000, 0, "CNY"),
        (200, "COMPLETED", 6000, 0, "CNY"),
    ],
    "J": [(20, "COMPLETED", 1000, 0, "USD"), (100, "COMPLETED", 1000, 0, "CNY")],
}

# Worked out by hand in docs/segmentation.md: (stage, R, F, M, segment, tier, frequency, monetary)
EXPECTED = {
    "A": ("ACTIVE", 5, 5, 5, "CORE_LOYAL", "TOP", 5, 50000),
    "B": ("NEW", 4, 2, 1, "NEW", "ORDINARY", 1, 3000),
    "C": ("ACTIVE", 3, 4, 2, "DORMANT", "ORDINARY", 2, 4000),
    "D": ("DORMANT", 2, 4, 4, "DORMANT", "CORE", 2, 16000),
    "E": ("CHURNED", 1, 2, 3, "CHURNED", "ORDINARY", 1, 5000),
    "F": ("CHURNED", None, None, None, "CHURNED", "ORDINARY", 0, 0),
    "G": ("PROSPECT", None, None, None, None, "PROSPECT", None, None),
    "H": ("NEW", 5, 2, 3, "NEW", "ORDINARY", 1, 5000),
    "I": ("ACTIVE", 2, 5, 5, "DORMANT", "CORE", 3, 18000),
    "J": ("ACTIVE", 4, 4, 4, "CORE_LOYAL", "ORDINARY", 2, 8000),
}


async def seed(gql: GraphQLClient, tenant: Tenant) -> None:
    await gql.data(
        tenant.key,
        'mutation { setExchangeRates(input: {rates: [{currency: "USD", day: "2026-01-01", rate: "7.0"}]}) { count } }',
    )
    for buyer, orders in ORDERS.items():
        for n, (days, status, total, refunded, currency) in enumerate(orders):
            data = await gql.data(
                tenant.key,
                RECORD,
                {
                    "input": {
                        "channel": "shopee",
                        "externalId": f"{buyer}-{n}",
                        "status": status,
                        "currency": currency,
                        "total": total,
                        "refunded": refunded,
                        "placedAt": (AS_OF - timedelta(days=days, hours=1)).isoformat(),
                        "lines": [{"sku": "S", "productName": "P", "quantity": 1, "unitPrice": total}],
                        "buyer": {"name": buyer, "buyerId": buyer},
                    }
                },
            )
            assert data["recordOrder"]["userErrors"] == []


async def scores(
    gql: GraphQLClient, tenant: Tenant, flt: dict[str, Any] | None = None
) -> dict[str, tuple[Any, ...]]:
    data = await gql.data(
        tenant.key,
        """query($f: CustomerFilterInput) { customers(first: 100, filter: $f) { edges { node {
             displayName lifecycleStage valueTier
             rfm { r f m segment frequency recencyDays monetary { amount currency } scoredAt } } } } }""",
        {"f": flt},
    )
    found = {}
    for edge in data["customers"]["edges"]:
        node = edge["node"]
        rfm = node["rfm"] or {}
        found[node["displayName"]] = (
            node["lifecycleStage"],
            rfm.get("r"),
            rfm.get("f"),
            rfm.get("m"),
            rfm.get("segment"),
            node["valueTier"],
            rfm.get("frequency"),
            (rfm.get("monetary") or {}).get("amount"),
        )
    return found


async def test_rfm_segments_match_the_hand_computed_expectation(gql: GraphQLClient, tenant: Tenant) -> None:
    await seed(gql, tenant)
    result = await gql.data(
        tenant.key,
        "mutation($at: DateTime!) { recomputeSegments(input: {asOf: $at}) { customersScored } }",
        {"at": AS_OF.isoformat()},
    )
    assert result["recomputeSegments"]["customersScored"] == 10
    assert await scores(gql, tenant) == EXPECTED

    summary = await gql.data(
        tenant.key,
        "{ segmentSummary { scoredAt segments { segment customers revenue { amount currency } } } }",
    )
    by_segment = {
        s["segment"]: (s["customers"], s["revenue"]["amount"]) for s in summary["segmentSummary"]["segments"]
    }
    assert by_segment == {
        "CORE_LOYAL": (2, 58000),
        "NEW": (2, 8000),
        "DORMANT": (3, 38000),
        "CHURNED": (2, 5000),
        None: (1, 0),
    }
    assert summary["segmentSummary"]["scoredAt"].startswith("2026-12-01")

    assert set(await scores(gql, tenant, {"segment": "CORE_LOYAL"})) == {"A", "J"}
    assert set(await scores(gql, tenant, {"valueTier": "CORE"})) == {"D", "I"}
    assert set(await scores(gql, tenant, {"lifecycleStage": "CHURNED"})) == {"E", "F"}


async def test_recomputing_is_idempotent_and_follows_the_data(gql: GraphQLClient, tenant: Tenant) -> None:
    await seed(gql, tenant)
    recompute = "mutation($at: DateTime!) { recomputeSegments(input: {asOf: $at}) { customersScored } }"
    await gql.data(tenant.key, recompute, {"at": AS_OF.isoformat()})
    first = await scores(gql, tenant)
    await gql.data(tenant.key, recompute, {"at": AS_OF.isoformat()})
    assert await scores(gql, tenant) == first
    # A year later everyone has churned.
    await gql.data(tenant.key, recompute, {"at": (AS_OF + timedelta(days=365)).isoformat()})
    later = await scores(gql, tenant)
    assert {v[0] for k, v in later.items() if k != "G"} == {"CHURNED"}


async def test_tags_apply_in_bulk_to_a_filter(gql: GraphQLClient, tenant: Tenant) -> None:
    await seed(gql, tenant)
    await gql.data(
        tenant.key,
        "mutation($at: DateTime!) { recomputeSegments(input: {asOf: $at}) { customersScored } }",
        {"at": AS_OF.isoformat()},
    )
    tagging = """mutation($f: CustomerFilterInput!) {
        tagCustomersByFilter(input: {filter: $f, tags: ["win-back"]}) { tagged userErrors { code } } }"""
    result = await gql.data(tenant.key, tagging, {"f": {"segment": "DORMANT"}})
    assert result["tagCustomersByFilter"] == {"tagged": 3, "userErrors": []}
    again = await gql.data(tenant.key, tagging, {"f": {"segment": "DORMANT"}})
    assert again["tagCustomersByFilter"]["tagged"] == 0
    assert set(await scores(gql, tenant, {"tags": ["win-back"]})) == {"C", "D", "I"}
