"""Channel conflicts through the API: policies, listings, detection, the workflow, isolation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from brandloop.conflicts import service
from brandloop.db.session import tenant_transaction
from support import GraphQLClient, Tenant

NOW = datetime.now(UTC)
PARTNER = """mutation($input: ChannelPartnerInput!) { createChannelPartner(input: $input) {
  partner { id name authorised territories } userErrors { field code } } }"""
POLICY = """mutation($input: PricePolicyInput!) { createPricePolicy(input: $input) {
  policy { id sku minPrice } userErrors { field code } } }"""
EXCEPTION = """mutation($input: PriceExceptionInput!) { createPriceException(input: $input) {
  exception { id minPrice } userErrors { field code } } }"""
OBSERVE = """mutation($input: RecordListingObservationsInput!) { recordListingObservations(input: $input) {
  recorded userErrors { field code } } }"""
DETECT = "mutation { runConflictDetection { checked opened joined resolved } }"
CONFLICTS = """query($filter: ConflictFilterInput) { conflicts(filter: $filter) { totalCount edges { node {
  id type cause sku channel severity breaches worstGap status resolutionStrategy resolution owner
  partner { name authorised }
  evidence { price currency policyPrice policyCurrency url observedAt }
  timeline { actor kind fromStatus toStatus note } } } } }"""
TRANSITION = """mutation($input: TransitionConflictInput!) { transitionConflict(input: $input) {
  conflict { status resolutionStrategy } userErrors { field code } } }"""


def seen(
    price: int, *, sku: str = "TEA-1", seller: str = "shop-88", hours_ago: float = 1, **more: Any
) -> dict[str, Any]:
    return {
        "channel": "shopee", "sku": sku, "sellerId": seller, "sellerName": f"Store {seller}", "price": price,
        "currency": "CNY", "observedAt": (NOW - timedelta(hours=hours_ago)).isoformat(),
        "url": f"https://shopee.example/{seller}/{sku}", "listingId": f"L-{seller}-{sku}", **more,
    }  # fmt: skip


async def setup(gql: GraphQLClient, tenant: Tenant, *, min_price: int = 10_000) -> tuple[str, str]:
    partner = await gql.data(
        tenant.key, PARTNER,
        {"input": {"name": "Tea House", "level": "RETAILER", "channel": "shopee", "sellerId": "shop-88",
                   "authorised": True, "territories": ["cn-gd", "CN-SH"], "contacts": [{"name": "Ms Lin", "email": "lin@tea.example"}]}},
    )  # fmt: skip
    assert partner["createChannelPartner"]["userErrors"] == []
    policy = await gql.data(
        tenant.key, POLICY,
        {"input": {"sku": "TEA-1", "currency": "CNY", "minPrice": min_price, "validFrom": (NOW - timedelta(days=30)).isoformat()}},
    )  # fmt: skip
    assert policy["createPricePolicy"]["userErrors"] == []
    return partner["createChannelPartner"]["partner"]["id"], policy["createPricePolicy"]["policy"]["id"]


async def observe(gql: GraphQLClient, tenant: Tenant, *observations: dict[str, Any]) -> None:
    done = await gql.data(tenant.key, OBSERVE, {"input": {"observations": list(observations)}})
    assert done["recordListingObservations"] == {"recorded": len(observations), "userErrors": []}


async def test_a_listing_below_map_opens_one_conflict_that_later_listings_join(
    gql: GraphQLClient, tenant: Tenant
) -> None:
    partner_id, _ = await setup(gql, tenant)
    await observe(gql, tenant, seen(8_000, hours_ago=3), seen(12_000, sku="TEA-2"))  # TEA-2 has no policy
    assert (await gql.data(tenant.key, DETECT))["runConflictDetection"] == {
        "checked": 2,
        "opened": 1,
        "joined": 0,
        "resolved": 0,
    }
    (edge,) = (await gql.data(tenant.key, CONFLICTS))["conflicts"]["edges"]
    conflict = edge["node"]
    assert (conflict["type"], conflict["cause"], conflict["sku"], conflict["status"]) == (
        "HORIZONTAL",
        "BELOW_MAP",
        "TEA-1",
        "OPEN",
    )
    assert conflict["partner"] == {"name": "Tea House", "authorised": True}
    assert conflict["worstGap"] == 0.2 and conflict["severity"] == "HIGH" and conflict["breaches"] == 1
    assert conflict["evidence"] == [
        {"price": 8_000, "currency": "CNY", "policyPrice": 10_000, "policyCurrency": "CNY",
         "url": "https://shopee.example/shop-88/TEA-1", "observedAt": (NOW - timedelta(hours=3)).isoformat()}
    ]  # fmt: skip
    assert (
        conflict["timeline"][0]["kind"] == "opened" and conflict["timeline"][0]["actor"] == "system:detection"
    )
    # A second listing below MAP joins the open conflict; detection again changes nothing.
    await observe(gql, tenant, seen(6_900, hours_ago=2))
    assert (await gql.data(tenant.key, DETECT))["runConflictDetection"] == {
        "checked": 1,
        "opened": 0,
        "joined": 1,
        "resolved": 0,
    }
    assert (await gql.data(tenant.key, DETECT))["runConflictDetection"]["checked"] == 0
    listed = (await gql.data(tenant.key, CONFLICTS))["conflicts"]
    assert listed["totalCount"] == 1
    joined = listed["edges"][0]["node"]
    assert joined["breaches"] == 2 and joined["worstGap"] == 0.31 and joined["severity"] == "CRITICAL"
    assert [e["price"] for e in joined["evidence"]] == [8_000, 6_900]
    only_critical = await gql.data(
        tenant.key, CONFLICTS, {"filter": {"severities": ["CRITICAL"], "partnerId": partner_id}}
    )
    assert only_critical["conflicts"]["totalCount"] == 1
    assert (await gql.data(tenant.key, CONFLICTS, {"filter": {"causes": ["OUT_OF_TERRITORY"]}}))["conflicts"][
        "totalCount"
    ] == 0


async def test_a_promotion_allows_a_lower_price_for_its_partners_and_window(
    gql: GraphQLClient, tenant: Tenant
) -> None:
    partner_id, policy_id = await setup(gql, tenant)
    window = {
        "startsAt": (NOW - timedelta(days=1)).isoformat(),
        "endsAt": (NOW + timedelta(days=1)).isoformat(),
    }
    made = await gql.data(
        tenant.key, EXCEPTION,
        {"input": {"policyId": policy_id, "minPrice": 7_500, "partnerIds": [partner_id], "reason": "11.11 sale", **window}},
    )  # fmt: skip
    assert made["createPriceException"]["userErrors"] == []
    overlapping = await gql.data(
        tenant.key, EXCEPTION,
        {"input": {"policyId": policy_id, "minPrice": 7_000, "partnerIds": [partner_id], "reason": "again", **window}},
    )  # fmt: skip
    assert overlapping["createPriceException"]["userErrors"] == [
        {"field": "startsAt", "code": "OVERLAPPING_EXCEPTION"}
    ]
    above_map = await gql.data(
        tenant.key, EXCEPTION,
        {"input": {"policyId": policy_id, "minPrice": 12_000, "channels": ["tmall"], "reason": "x", **window}},
    )  # fmt: skip
    assert above_map["createPriceException"]["userErrors"] == [
        {"field": "minPrice", "code": "INVALID_AMOUNT"}
    ]
    # Within the promotion: allowed. Below the promotion's price, or before it began: a breach.
    await observe(gql, tenant, seen(8_000, hours_ago=2))
    assert (await gql.data(tenant.key, DETECT))["runConflictDetection"]["opened"] == 0
    await observe(gql, tenant, seen(7_000, hours_ago=1), seen(8_000, hours_ago=30))
    assert (await gql.data(tenant.key, DETECT))["runConflictDetection"]["opened"] == 1
    conflict = (await gql.data(tenant.key, CONFLICTS))["conflicts"]["edges"][0]["node"]
    assert sorted(e["price"] for e in conflict["evidence"]) == [7_000, 8_000]


async def test_a_price_conflict_back_within_policy_resolves_itself(
    engine: AsyncEngine, gql: GraphQLClient, tenant: Tenant
) -> None:
    await setup(gql, tenant)
    await observe(gql, tenant, seen(9_000, hours_ago=100))
    await gql.data(tenant.key, DETECT)
    await observe(gql, tenant, seen(10_000, hours_ago=90))  # back at MAP, 90 hours ago
    async with tenant_transaction(engine, tenant.id) as session:
        early = await service.detect(session, now=NOW - timedelta(hours=80))  # 20 hours after: too soon
    assert (early.checked, early.resolved) == (1, 0)
    async with tenant_transaction(engine, tenant.id) as session:
        assert (await service.detect(session, now=NOW)).resolved == 1
    conflict = (await gql.data(tenant.key, CONFLICTS))["conflicts"]["edges"][0]["node"]
    assert conflict["status"] == "RESOLVED" and "back within policy" in conflict["resolution"]
    assert conflict["timeline"][-1] == {
        "actor": "system:detection", "kind": "status", "fromStatus": "OPEN", "toStatus": "RESOLVED",
        "note": conflict["resolution"],
    }  # fmt: skip
    # A new breach after that opens a new conflict: the resolved one stays resolved.
    await observe(gql, tenant, seen(9_500, hours_ago=1))
    assert (await gql.data(tenant.key, DETECT))["runConflictDetection"]["opened"] == 1


async def test_listings_in_another_currency_are_judged_at_the_days_rate(
    gql: GraphQLClient, tenant: Tenant
) -> None:
    await setup(gql, tenant)  # MAP 100.00 CNY; the tenant reports in CNY
    day = (NOW - timedelta(days=2)).date().isoformat()
    rates = await gql.data(
        tenant.key,
        "mutation($input: SetExchangeRatesInput!) { setExchangeRates(input: $input) { userErrors { code } } }",
        {"input": {"rates": [{"currency": "USD", "day": day, "rate": "7.10"}]}},
    )
    assert rates["setExchangeRates"]["userErrors"] == []
    # 14.50 USD = 102.95 CNY (fine); 13.50 USD = 95.85 CNY (below); in EUR, no rate: not judged.
    await observe(
        gql,
        tenant,
        seen(1_450, currency="USD"),
        seen(1_350, currency="USD", seller="shop-88"),
        seen(900, currency="EUR"),
    )
    assert (await gql.data(tenant.key, DETECT))["runConflictDetection"] == {
        "checked": 3,
        "opened": 1,
        "joined": 0,
        "resolved": 0,
    }
    conflict = (await gql.data(tenant.key, CONFLICTS))["conflicts"]["edges"][0]["node"]
    assert [(e["price"], e["currency"]) for e in conflict["evidence"]] == [(1_350, "USD")]


async def test_an_unknown_seller_becomes_an_unauthorised_partner_in_conflict(
    gql: GraphQLClient, tenant: Tenant
) -> None:
    await setup(gql, tenant)
    await observe(gql, tenant, seen(11_000, seller="grey-importer"))
    assert (await gql.data(tenant.key, DETECT))["runConflictDetection"]["opened"] == 1
    conflict = (await gql.data(tenant.key, CONFLICTS))["conflicts"]["edges"][0]["node"]
    assert (conflict["cause"], conflict["type"]) == ("UNAUTHORISED_SELLER", "MULTI_CHANNEL")
    assert conflict["partner"] == {"name": "Store grey-importer", "authorised": False}


async def test_the_workflow_refuses_illegal_moves_and_keeps_a_timeline(
    gql: GraphQLClient, tenant: Tenant
) -> None:
    await setup(gql, tenant)
    await observe(gql, tenant, seen(9_000))
    await gql.data(tenant.key, DETECT)
    conflict_id = (await gql.data(tenant.key, CONFLICTS))["conflicts"]["edges"][0]["node"]["id"]
    move = lambda **given: gql.data(tenant.key, TRANSITION, {"input": {"id": conflict_id, **given}})  # noqa: E731
    refused = (await move(status="RESOLVED"))["transitionConflict"]
    assert refused["userErrors"] == [
        {"field": "resolutionStrategy", "code": "REQUIRED"},
        {"field": "resolution", "code": "REQUIRED"},
    ]
    assert (await move(status="DISMISSED"))["transitionConflict"]["userErrors"] == [
        {"field": "note", "code": "REQUIRED"}
    ]
    assert (await move(status="INVESTIGATING", note="Asked the store"))["transitionConflict"]["conflict"][
        "status"
    ] == "INVESTIGATING"
    assert (await move(status="OPEN"))["transitionConflict"]["userErrors"] == [
        {"field": "status", "code": "ILLEGAL_TRANSITION"}
    ]
    assigned = await gql.data(
        tenant.key, "mutation($id: ID!) { assignConflict(input: {id: $id, owner: \"mei@brand.example\"}) { conflict { owner } } }",
        {"id": conflict_id},
    )  # fmt: skip
    assert assigned["assignConflict"]["conflict"]["owner"] == "mei@brand.example"
    await gql.data(
        tenant.key,
        'mutation($id: ID!) { addConflictNote(input: {id: $id, note: "Called twice"}) { conflict { id } } }',
        {"id": conflict_id},
    )
    done = await move(
        status="RESOLVED", resolutionStrategy="ENFORCEMENT", resolution="Price corrected after notice"
    )
    assert done["transitionConflict"] == {
        "conflict": {"status": "RESOLVED", "resolutionStrategy": "ENFORCEMENT"},
        "userErrors": [],
    }
    assert (await move(status="ESCALATED"))["transitionConflict"]["userErrors"][0][
        "code"
    ] == "ILLEGAL_TRANSITION"
    timeline = (await gql.data(tenant.key, CONFLICTS))["conflicts"]["edges"][0]["node"]["timeline"]
    assert [(e["kind"], e["toStatus"], e["note"]) for e in timeline] == [
        ("opened", "OPEN", "1 listing(s) seen below the minimum advertised price"),
        ("status", "INVESTIGATING", "Asked the store"),
        ("assigned", None, "mei@brand.example"),
        ("note", None, "Called twice"),
        ("status", "RESOLVED", None),
    ]
    people = {e["actor"] for e in timeline[1:]}
    assert len(people) == 1 and "system:detection" not in people  # the key that made the changes


async def test_one_tenants_policies_never_touch_anothers_listings(
    gql: GraphQLClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    await setup(gql, other_tenant, min_price=50_000)  # the other brand's MAP for the same SKU is far higher
    await setup(gql, tenant)
    await observe(gql, tenant, seen(20_000))
    assert (await gql.data(other_tenant.key, DETECT))["runConflictDetection"]["checked"] == 0
    assert (await gql.data(tenant.key, DETECT))["runConflictDetection"] == {
        "checked": 1,
        "opened": 0,
        "joined": 0,
        "resolved": 0,
    }
    await observe(gql, tenant, seen(9_000))
    await gql.data(tenant.key, DETECT)
    conflict_id = (await gql.data(tenant.key, CONFLICTS))["conflicts"]["edges"][0]["node"]["id"]
    assert (await gql.data(other_tenant.key, CONFLICTS))["conflicts"]["totalCount"] == 0
    foreign = await gql.data(
        other_tenant.key, "query($id: ID!) { node(id: $id) { id } }", {"id": conflict_id}
    )
    assert foreign["node"] is None
    moved = await gql.data(
        other_tenant.key, TRANSITION, {"input": {"id": conflict_id, "status": "INVESTIGATING"}}
    )
    assert moved["transitionConflict"]["userErrors"] == [{"field": "id", "code": "NOT_FOUND"}]


async def test_bad_inputs_are_refused_with_what_to_fix(gql: GraphQLClient, tenant: Tenant) -> None:
    bad_partner = await gql.data(
        tenant.key, PARTNER,
        {"input": {"name": "", "level": "DEALER", "channel": "Bad Channel", "authorised": True, "territories": ["Guangdong"]}},
    )  # fmt: skip
    assert {e["field"] for e in bad_partner["createChannelPartner"]["userErrors"]} == {
        "name",
        "channel",
        "territories",
    }
    bad = await gql.data(
        tenant.key, OBSERVE, {"input": {"observations": [seen(-5, currency="XXQ", region="somewhere")]}}
    )
    assert {e["field"] for e in bad["recordListingObservations"]["userErrors"]} == {
        "observations.0.price",
        "observations.0.currency",
        "observations.0.region",
    }
    too_many = await gql.data(tenant.key, OBSERVE, {"input": {"observations": [seen(1)] * 501}})
    assert too_many["recordListingObservations"]["userErrors"][0]["code"] == "INVALID_COUNT"
    assert (await gql.data(tenant.key, DETECT))["runConflictDetection"]["checked"] == 0  # nothing was stored
