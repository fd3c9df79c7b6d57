"""Channel conflicts through the API: policies, listings, detection, the workflow, isolation."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from brandloop.conflicts import detection
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
        early = await detection.detect(session, now=NOW - timedelta(hours=80))  # 20 hours after: too soon
    assert (early.checked, early.resolved) == (1, 0)
    async with tenant_transaction(engine, tenant.id) as session:
        assert (await detection.detect(session, now=NOW)).resolved == 1
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
        ("confirmed", None, "Tea House is at violation level 1 (warning)."),
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


PARTNERS = "{ channelPartners { edges { node { name violationLevel escalationStep } } } }"
RECORD = """mutation($input: RecordConflictInput!) { recordConflict(input: $input) {
  conflict { id type cause channel severity status evidence { notes attachments price currency } timeline { kind note } }
  userErrors { field code } } }"""


async def test_an_order_shipped_outside_its_sellers_territory_opens_a_territory_conflict(
    gql: GraphQLClient, tenant: Tenant
) -> None:
    await setup(gql, tenant)  # Tea House sells on shopee as shop-88 in CN-GD and CN-SH
    record = (
        """mutation($input: RecordOrderInput!) { recordOrder(input: $input) { userErrors { field code } } }"""
    )
    for n, region in enumerate(["CN-GD", "CN-BJ", "CN-BJ", None]):
        order = {
            "channel": "shopee", "externalId": f"SO-{n}", "status": "PAID", "currency": "CNY", "total": 5000,
            "placedAt": (NOW - timedelta(hours=5 - n)).isoformat(), "sellerId": "shop-88", "shipRegion": region,
            "lines": [{"sku": "TEA-1", "productName": "Oolong", "quantity": 1, "unitPrice": 5000}],
        }  # fmt: skip
        assert (await gql.data(tenant.key, record, {"input": order}))["recordOrder"]["userErrors"] == []
    bad = await gql.data(
        tenant.key, record, {"input": {**order, "externalId": "SO-9", "shipRegion": "Beijing"}}
    )
    assert bad["recordOrder"]["userErrors"] == [{"field": "shipRegion", "code": "INVALID_REGION"}]
    assert (await gql.data(tenant.key, DETECT))["runConflictDetection"]["opened"] == 1
    (edge,) = (await gql.data(tenant.key, CONFLICTS, {"filter": {"causes": ["OUT_OF_TERRITORY"]}}))[
        "conflicts"
    ]["edges"]
    conflict = edge["node"]
    assert (conflict["type"], conflict["sku"], conflict["breaches"]) == ("HORIZONTAL", None, 2)
    assert [e["url"] for e in conflict["evidence"]] == [None, None]
    await gql.data(tenant.key, DETECT)  # the same orders read again add nothing
    again = (await gql.data(tenant.key, CONFLICTS, {"filter": {"causes": ["OUT_OF_TERRITORY"]}}))["conflicts"]
    assert again["totalCount"] == 1 and len(again["edges"][0]["node"]["evidence"]) == 2


async def test_people_record_conflicts_detection_cannot_see(gql: GraphQLClient, tenant: Tenant) -> None:
    partner_id, _ = await setup(gql, tenant)
    given = {
        "type": "VERTICAL", "cause": "CUSTOMER_POACHING", "partnerId": partner_id, "note": "Reported by the Shanghai store",
        "evidence": [{"observedAt": NOW.isoformat(), "notes": "Flyers at our store's door",
                      "attachments": ["https://files.brand.example/flyer.jpg"]}],
    }  # fmt: skip
    made = (await gql.data(tenant.key, RECORD, {"input": given}))["recordConflict"]
    conflict = made["conflict"]
    assert made["userErrors"] == [] and (conflict["type"], conflict["channel"], conflict["status"]) == (
        "VERTICAL",
        "shopee",
        "OPEN",
    )
    assert conflict["evidence"] == [
        {
            "notes": "Flyers at our store's door",
            "attachments": ["https://files.brand.example/flyer.jpg"],
            "price": None,
            "currency": None,
        }
    ]
    assert conflict["timeline"] == [{"kind": "opened", "note": "Reported by the Shanghai store"}]
    twice = (await gql.data(tenant.key, RECORD, {"input": given}))["recordConflict"]
    assert twice["userErrors"] == [{"field": "partnerId", "code": "ALREADY_OPEN"}]
    bad = {
        **given,
        "cause": "OTHER",
        "evidence": [{"observedAt": NOW.isoformat(), "price": 5, "attachments": ["file:///etc/passwd"]}],
    }
    assert {
        e["field"]
        for e in (await gql.data(tenant.key, RECORD, {"input": bad}))["recordConflict"]["userErrors"]
    } == {"evidence.0.price", "evidence.0.attachments"}
    # Severity is overridable, and back to computed; the timeline says so.
    update = """mutation($input: UpdateConflictInput!) { updateConflict(input: $input) { conflict { severity type } } }"""
    high = await gql.data(
        tenant.key, update, {"input": {"id": conflict["id"], "severity": "CRITICAL", "type": "MULTI_CHANNEL"}}
    )
    assert high["updateConflict"]["conflict"] == {"severity": "CRITICAL", "type": "MULTI_CHANNEL"}
    computed = await gql.data(tenant.key, update, {"input": {"id": conflict["id"], "severity": None}})
    assert computed["updateConflict"]["conflict"]["severity"] == "LOW"


async def test_confirmed_conflicts_raise_the_partner_up_the_ladder_until_reset(
    gql: GraphQLClient, tenant: Tenant
) -> None:
    partner_id, _ = await setup(gql, tenant)
    ladder = """mutation { updateTenantSettings(input: {escalationLadder: ["warning", "supply_hold"]}) { userErrors { code } } }"""
    assert (await gql.data(tenant.key, ladder))["updateTenantSettings"]["userErrors"] == []
    for n, cause in enumerate(["CUSTOMER_POACHING", "CAMPAIGN_NON_EXECUTION", "OTHER"]):
        made = await gql.data(
            tenant.key, RECORD, {"input": {"type": "HORIZONTAL", "cause": cause, "partnerId": partner_id}}
        )
        conflict_id = made["recordConflict"]["conflict"]["id"]
        step = "NOTICE_SENT" if n else "DISMISSED"  # a dismissed conflict confirms nothing
        moved = await gql.data(
            tenant.key, TRANSITION, {"input": {"id": conflict_id, "status": step, "note": "seen"}}
        )
        assert moved["transitionConflict"]["userErrors"] == []
    escalate = await gql.data(tenant.key, TRANSITION, {"input": {"id": conflict_id, "status": "ESCALATED"}})
    assert escalate["transitionConflict"]["userErrors"] == []  # the same conflict again: counted once
    (partner,) = [e["node"] for e in (await gql.data(tenant.key, PARTNERS))["channelPartners"]["edges"]]
    assert partner == {"name": "Tea House", "violationLevel": 2, "escalationStep": "supply_hold"}
    reset = """mutation($input: ResetPartnerViolationsInput!) { resetPartnerViolations(input: $input) {
      partner { violationLevel escalationStep } userErrors { field code } } }"""
    refused = await gql.data(tenant.key, reset, {"input": {"id": partner_id, "reason": " "}})
    assert refused["resetPartnerViolations"]["userErrors"] == [{"field": "reason", "code": "INVALID_LENGTH"}]
    done = await gql.data(tenant.key, reset, {"input": {"id": partner_id, "reason": "New contract signed"}})
    assert done["resetPartnerViolations"] == {
        "partner": {"violationLevel": 0, "escalationStep": None},
        "userErrors": [],
    }


async def test_the_summary_counts_conflicts_and_map_compliance(gql: GraphQLClient, tenant: Tenant) -> None:
    await setup(gql, tenant)
    await observe(gql, tenant, seen(8_000, hours_ago=5), seen(10_000, hours_ago=4), seen(11_000, hours_ago=3),
                  seen(12_000, hours_ago=2, seller="grey"))  # fmt: skip
    await gql.data(tenant.key, DETECT)
    below = (await gql.data(tenant.key, CONFLICTS, {"filter": {"causes": ["BELOW_MAP"]}}))["conflicts"][
        "edges"
    ][0]["node"]
    await gql.data(
        tenant.key, TRANSITION,
        {"input": {"id": below["id"], "status": "RESOLVED", "resolutionStrategy": "ENFORCEMENT", "resolution": "Fixed"}},
    )  # fmt: skip
    query = """query($from: DateTime!, $to: DateTime!) { conflictSummary(from: $from, to: $to) {
      open new resolved dismissed medianHoursToResolve byType { key count } byCause { key count }
      byChannel { key count } byPartner { partner { name } count } listingsJudged mapComplianceRate } }"""
    span = {"from": (NOW - timedelta(days=1)).isoformat(), "to": (NOW + timedelta(hours=1)).isoformat()}
    found = (await gql.data(tenant.key, query, span))["conflictSummary"]
    assert (found["open"], found["new"], found["resolved"], found["dismissed"]) == (1, 2, 1, 0)
    assert 4.9 < found["medianHoursToResolve"] < 5.5  # opened at the breach 5 hours ago, resolved now
    assert found["byCause"] == [{"key": "BELOW_MAP", "count": 1}, {"key": "UNAUTHORISED_SELLER", "count": 1}]
    assert found["byType"] == [{"key": "HORIZONTAL", "count": 1}, {"key": "MULTI_CHANNEL", "count": 1}]
    assert found["byChannel"] == [{"key": "shopee", "count": 2}]
    assert sorted(p["partner"]["name"] for p in found["byPartner"]) == ["Store grey", "Tea House"]
    assert (found["listingsJudged"], found["mapComplianceRate"]) == (4, 0.75)
    # The KPI reads the same listings: three of the four kept the policy.
    widget = {"section": "channel", "kpi": "map_compliance_rate", "days": 2, "breakdown": "channel"}
    save = """mutation($w: JSON!) { saveDashboard(input: {name: "MAP", widgets: $w}) {
      dashboard { widgets { value breakdown { key value } } } } }"""
    (kpi,) = (await gql.data(tenant.key, save, {"w": [widget]}))["saveDashboard"]["dashboard"]["widgets"]
    assert kpi == {"value": 0.75, "breakdown": [{"key": "shopee", "value": 0.75}]}
    reversed_period = await gql.raw(tenant.key, query, {"from": span["to"], "to": span["from"]})
    assert reversed_period.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_two_detections_at_once_never_open_twin_conflicts(
    engine: AsyncEngine, gql: GraphQLClient, tenant: Tenant
) -> None:
    await setup(gql, tenant)
    await observe(gql, tenant, seen(8_000, hours_ago=2), seen(7_000, hours_ago=1))

    async def one_worker() -> detection.Detection:
        async with tenant_transaction(engine, tenant.id) as session:
            return await detection.detect(session, limit=1)  # each takes the listing the other left

    first, second = await asyncio.gather(one_worker(), one_worker())
    assert (first.checked, second.checked) == (1, 1)
    assert sorted((first.opened, second.opened)) == [0, 1] and first.joined + second.joined == 1
    listed = (await gql.data(tenant.key, CONFLICTS))["conflicts"]
    assert listed["totalCount"] == 1 and listed["edges"][0]["node"]["breaches"] == 2
