"""KPIs through the API on a fixed dataset computed by hand; roll-ups against a direct
computation on a random dataset; target statuses; isolation."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from kpis_support import settle
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from brandloop.db.session import tenant_transaction
from brandloop.kpis import rollup
from brandloop.kpis.catalogue import Direction
from brandloop.kpis.measures import measure
from brandloop.kpis.models import Target
from brandloop.kpis.service import Status, status
from brandloop.orders import service as orders
from support import GraphQLClient, Tenant

SHANGHAI = ZoneInfo("Asia/Shanghai")
TODAY = datetime.now(SHANGHAI).date()
RECORD = (
    """mutation($input: RecordOrderInput!) { recordOrder(input: $input) { userErrors { field code } } }"""
)
SAVE = """mutation($input: SaveDashboardInput!) { saveDashboard(input: $input) {
  dashboard { id widgets { kpi { key version } dayFrom dayUntil value comparisonValue change status
  target { value } series { start value } breakdown { key value status } } } userErrors { field code } } }"""


def noon(day: date) -> str:
    return datetime.combine(day, time(12), SHANGHAI).isoformat()


async def record(gql: GraphQLClient, tenant: Tenant, n: str, day: date, total: int, **more: Any) -> None:
    order = {
        "channel": "shopee", "externalId": n, "status": "PAID", "currency": "CNY", "total": total,
        "placedAt": noon(day), "lines": [{"sku": "TEA", "productName": "Tea", "quantity": 1, "unitPrice": total}],
        **more,
    }  # fmt: skip
    assert (await gql.data(tenant.key, RECORD, {"input": order}))["recordOrder"]["userErrors"] == []


async def in_shanghai(gql: GraphQLClient, tenant: Tenant) -> None:
    change = 'mutation { updateTenantSettings(input: {timezone: "Asia/Shanghai"}) { userErrors { code } } }'
    assert (await gql.data(tenant.key, change))["updateTenantSettings"]["userErrors"] == []


async def test_order_kpis_on_a_fixed_dataset_equal_the_hand_computation(
    engine: AsyncEngine, gql: GraphQLClient, tenant: Tenant
) -> None:
    settings = 'mutation { updateTenantSettings(input: {timezone: "Asia/Shanghai", reportingCurrency: "CNY", grossMargin: 0.4}) { userErrors { code } } }'
    assert (await gql.data(tenant.key, settings))["updateTenantSettings"]["userErrors"] == []
    margin = "mutation($m: Float!) { updateTenantSettings(input: {grossMargin: $m}) { userErrors { field code } } }"
    for wrong in (0, -0.2, 1.5):
        refused = (await gql.data(tenant.key, margin, {"m": wrong}))["updateTenantSettings"]["userErrors"]
        assert refused == [{"field": "grossMargin", "code": "OUT_OF_RANGE"}]
    d0, d1, d2 = TODAY - timedelta(days=2), TODAY - timedelta(days=1), TODAY
    rates = 'mutation($d: Date!) { setExchangeRates(input: {rates: [{currency: "USD", day: $d, rate: "7"}]}) { userErrors { code } } }'
    await gql.data(tenant.key, rates, {"d": d0.isoformat()})
    a, b, c, d = ({"email": f"{x}@kpi.example"} for x in "abcd")
    await record(gql, tenant, "K0", d0, 4000, buyer=a)  # before the period: A is not new in it
    await record(gql, tenant, "K7", d0, 3000, buyer=d)  # D too, and does not come back
    await record(gql, tenant, "K1", d1, 10000, buyer=a, shipRegion="CN-SH")
    await record(gql, tenant, "K2", d1, 5000, buyer=b, channel="wechat", shipRegion="CN-GD")
    await record(gql, tenant, "K3", d1, 2000)  # no buyer: GMV and orders, no customer
    await record(gql, tenant, "K4", d1, 99900, buyer=b, status="CANCELLED")  # not paid: nowhere
    await record(gql, tenant, "K5", d2, 6000, buyer=a, status="PARTIALLY_REFUNDED", refunded=1000)
    await record(
        gql, tenant, "K6", d2, 1000, buyer=c, channel="amazon", currency="USD"
    )  # 10.00 USD = 70.00 CNY
    spend = """mutation($input: RecordMarketingSpendInput!) { recordMarketingSpend(input: $input) { recorded userErrors { code } } }"""
    entries = [{"channel": "shopee", "dayFrom": d1.isoformat(), "dayUntil": d2.isoformat(), "amount": 3000}]
    assert (await gql.data(tenant.key, spend, {"input": {"entries": entries}}))["recordMarketingSpend"][
        "recorded"
    ] == 1
    await settle(engine, tenant)
    keys = [
        "gmv",
        "orders",
        "aov",
        "new_customers",
        "active_customers",
        "repeat_purchase_rate",
        "retention_rate",
        "churn_rate",
        "private_domain_gmv_share",
        "channel_gmv_share",
        "marketing_spend",
        "cac",
        "roi",
        "open_conflicts",
        "map_compliance_rate",
        "cohort_retention_rate",
        "clv",
        "clv_cac",
    ]
    breakdowns = {"gmv": "channel", "channel_gmv_share": "channel", "cac": "channel", "orders": "region",
                  "active_customers": "segment"}  # fmt: skip
    widgets = [{"section": "brand", "kpi": k, "days": 2, "breakdown": breakdowns.get(k)} for k in keys]
    saved = (await gql.data(tenant.key, SAVE, {"input": {"name": "Test", "widgets": widgets}}))[
        "saveDashboard"
    ]
    assert saved["userErrors"] == []
    shown = {w["kpi"]["key"]: w for w in saved["dashboard"]["widgets"]}
    gmv = 100 + 50 + 20 + 50 + 70  # K1, K2, K3, K5 less its refund, K6 converted
    # The two days before: A and D bought, both for the first time; A came back, D did not.
    clv = gmv / 3 * 0.4 / 0.5  # GMV per active customer x gross margin / churn
    assert {k: shown[k]["value"] for k in keys} == {
        "gmv": gmv, "orders": 5, "aov": gmv / 5, "new_customers": 2, "active_customers": 3,
        "repeat_purchase_rate": round(1 / 3, 6), "private_domain_gmv_share": round(50 / gmv, 6),
        "channel_gmv_share": None, "marketing_spend": 30, "cac": 15, "roi": round((gmv - 30) / 30, 6),
        "open_conflicts": 0, "retention_rate": 0.5, "churn_rate": 0.5, "map_compliance_rate": None,
        "cohort_retention_rate": 0.5, "clv": round(clv, 6), "clv_cac": round(clv / 15, 6),
    }  # fmt: skip
    assert (shown["gmv"]["dayFrom"], shown["gmv"]["dayUntil"]) == (d1.isoformat(), d2.isoformat())
    assert shown["gmv"]["comparisonValue"] == 70 and shown["gmv"]["change"] == gmv - 70
    assert shown["clv"]["series"] == []  # whole periods only
    regions = {r["key"]: r["value"] for r in shown["orders"]["breakdown"]}
    assert regions == {"CN-SH": 1, "CN-GD": 1, "unknown": 3}
    # Nobody has been scored by the segmentation job yet; the buyerless order has no customer to count.
    segments = {r["key"]: r["value"] for r in shown["active_customers"]["breakdown"]}
    assert segments == {"unscored": 3, "no_buyer": 0}
    assert shown["gmv"]["series"] == [
        {"start": d1.isoformat(), "value": 170},
        {"start": d2.isoformat(), "value": 120},
    ]
    assert shown["gmv"]["breakdown"] == [
        {"key": "shopee", "value": 170, "status": "NO_TARGET"},
        {"key": "amazon", "value": 70, "status": "NO_TARGET"},
        {"key": "wechat", "value": 50, "status": "NO_TARGET"},
    ]
    assert shown["channel_gmv_share"]["breakdown"][0]["value"] == round(170 / gmv, 6)
    cac = {r["key"]: r["value"] for r in shown["cac"]["breakdown"]}
    assert cac == {"shopee": None, "amazon": 0, "wechat": 0}  # the spend was on shopee, where nobody was new
    assert shown["gmv"]["kpi"]["version"] == 1 and shown["gmv"]["status"] == "NO_TARGET"


def test_a_target_status_flips_at_its_thresholds_both_ways() -> None:
    target = Target(target=Decimal(100), at_risk_within=Decimal("0.1"))
    up, down = Direction.HIGHER_IS_BETTER, Direction.LOWER_IS_BETTER
    assert [status(Decimal(v), target, up) for v in (120, 100, "99.99", 90, "89.99")] == [
        Status.ON_TRACK,
        Status.ON_TRACK,
        Status.AT_RISK,
        Status.AT_RISK,
        Status.OFF_TRACK,
    ]
    assert [status(Decimal(v), target, down) for v in (80, 100, "100.01", 110, "110.01")] == [
        Status.ON_TRACK,
        Status.ON_TRACK,
        Status.AT_RISK,
        Status.AT_RISK,
        Status.OFF_TRACK,
    ]
    assert status(None, target, up) == status(Decimal(1), None, up) == Status.NO_TARGET


async def test_targets_show_on_the_dashboard_and_bad_ones_are_refused(
    engine: AsyncEngine, gql: GraphQLClient, tenant: Tenant
) -> None:
    await in_shanghai(gql, tenant)
    await record(gql, tenant, "T1", TODAY, 10000, buyer={"email": "t@kpi.example"})
    await settle(engine, tenant)
    target = """mutation($input: KpiTargetInput!) { setKpiTarget(input: $input) { target { value } userErrors { field code } } }"""
    period = {"dayFrom": (TODAY - timedelta(days=6)).isoformat(), "dayUntil": TODAY.isoformat()}
    assert (await gql.data(tenant.key, target, {"input": {"kpi": "gmv", "target": 105, **period}}))[
        "setKpiTarget"
    ]["userErrors"] == []
    widgets = [{"section": "brand", "kpi": "gmv", "days": 7, "comparison": "target"}]
    shown = (await gql.data(tenant.key, SAVE, {"input": {"name": "G", "widgets": widgets}}))["saveDashboard"][
        "dashboard"
    ]
    assert shown["widgets"][0]["status"] == "AT_RISK" and shown["widgets"][0]["comparisonValue"] == 105
    await gql.data(
        tenant.key, target, {"input": {"kpi": "gmv", "target": 200, **period}}
    )  # the newest counts
    dashboard = "query($id: ID!) { dashboard(id: $id) { widgets { status target { value } } } }"
    again = (await gql.data(tenant.key, dashboard, {"id": shown["id"]}))["dashboard"]["widgets"][0]
    assert again == {"status": "OFF_TRACK", "target": {"value": 200}}
    bad = await gql.data(tenant.key, target, {"input": {"kpi": "nope", "target": 1, **period}})
    assert bad["setKpiTarget"]["userErrors"] == [{"field": "kpi", "code": "UNKNOWN_KPI"}]
    shopee = {"dimension": "CHANNEL", "dimensionValue": "shopee"}
    bad = await gql.data(
        tenant.key, target, {"input": {"kpi": "points_issued", "target": 1, **shopee, **period}}
    )
    assert bad["setKpiTarget"]["userErrors"] == [{"field": "dimension", "code": "INVALID_DIMENSION"}]
    bad = await gql.data(
        tenant.key, target, {"input": {"kpi": "gmv", "target": 1, "dimension": "REGION", **period}}
    )
    assert bad["setKpiTarget"]["userErrors"] == [{"field": "dimensionValue", "code": "INCOMPLETE"}]
    bad = await gql.data(
        tenant.key,
        target,
        {"input": {"kpi": "gmv", "target": 1, "dimension": "REGION", "dimensionValue": "x" * 65, **period}},
    )
    assert bad["setKpiTarget"]["userErrors"] == [{"field": "dimensionValue", "code": "INVALID_VALUE"}]
    # A channel's target shows on its breakdown row, not on the KPI overall.
    await gql.data(tenant.key, target, {"input": {"kpi": "gmv", "target": 90, **shopee, **period}})
    widgets = [{"section": "brand", "kpi": "gmv", "days": 7, "breakdown": "channel"}]
    by_channel = (await gql.data(tenant.key, SAVE, {"input": {"name": "B", "widgets": widgets}}))[
        "saveDashboard"
    ]
    assert by_channel["dashboard"]["widgets"][0]["breakdown"] == [
        {"key": "shopee", "value": 100, "status": "ON_TRACK"}
    ]
    assert by_channel["dashboard"]["widgets"][0]["status"] == "OFF_TRACK"  # against 200 overall
    broken = await gql.data(
        tenant.key, SAVE, {"input": {"name": "X", "widgets": [{"section": "nowhere", "kpi": "gmv"}]}}
    )
    assert broken["saveDashboard"]["userErrors"][0]["code"] == "INVALID_WIDGET"
    wrong = [
        {"section": "brand", "kpi": "points_issued", "breakdown": "channel"},
        {"section": "brand", "kpi": "nps", "breakdown": "planet"},
    ]
    broken = await gql.data(tenant.key, SAVE, {"input": {"name": "X", "widgets": wrong}})
    assert [(e["field"], e["code"]) for e in broken["saveDashboard"]["userErrors"]] == [
        ("widgets.0.breakdown", "INVALID_BREAKDOWN"),
        ("widgets.1.breakdown", "INVALID_WIDGET"),
    ]


async def test_the_default_dashboard_follows_the_four_part_model_and_sees_only_its_tenant(
    engine: AsyncEngine, gql: GraphQLClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    await in_shanghai(gql, tenant)
    await in_shanghai(gql, other_tenant)
    await record(gql, tenant, "I1", TODAY, 12300, buyer={"email": "i@kpi.example"})
    await settle(engine, tenant)
    await settle(engine, other_tenant)
    query = "{ dashboard { id name widgets { section kpi { key } value } } }"
    mine = (await gql.data(tenant.key, query))["dashboard"]
    theirs = (await gql.data(other_tenant.key, query))["dashboard"]
    assert mine["id"] is None and [w["section"] for w in mine["widgets"]][::4] == [
        "brand",
        "channel",
        "customer",
        "digital",
    ]
    gmv = lambda d: next(w["value"] for w in d["widgets"] if w["kpi"]["key"] == "gmv")  # noqa: E731
    assert gmv(mine) == 123 and gmv(theirs) == 0
    async with tenant_transaction(engine, other_tenant.id) as session:
        assert await session.scalar(text("SELECT count(*) FROM kpi_customer_days")) == 0


async def test_roll_ups_equal_a_direct_computation_on_a_random_dataset(
    engine: AsyncEngine, tenant: Tenant
) -> None:
    rng = random.Random(20261127)
    start = date(2026, 9, 1)
    async with tenant_transaction(engine, tenant.id) as session:
        await session.execute(
            text("INSERT INTO exchange_rates (tenant_id, currency, day, rate) VALUES (:t, 'USD', :d, 7.13)"),
            {"t": tenant.id, "d": start - timedelta(days=1)},
        )
    batch = []
    for n in range(400):
        placed = datetime.combine(start, time(), UTC) + timedelta(minutes=rng.randrange(20 * 24 * 60))
        total = rng.randrange(100, 50_000)
        buyer = (
            None if rng.random() < 0.1 else orders.BuyerInput(email=f"r{rng.randrange(60)}@random.example")
        )
        batch.append(
            orders.OrderInput(
                channel=rng.choice(["shopee", "wechat", "tiktok_shop"]), external_id=f"R{n}",
                status=rng.choice(["paid", "shipped", "completed", "cancelled", "refunded", "partially_refunded", "pending"]),
                currency=rng.choice(["CNY", "CNY", "USD"]), total=total, placed_at=placed,
                refunded=rng.randrange(total // 2), lines=[orders.LineInput("S", "Tea", 1, total)], buyer=buyer,
                ship_region=rng.choice([None, "CN-SH", "CN-GD"]),
            )
        )  # fmt: skip
    async with tenant_transaction(engine, tenant.id) as session:
        await orders.ingest(session, [orders.validate(o) for o in batch])
        await rollup.rebuild(session, start - timedelta(days=1), start + timedelta(days=21))
    async with tenant_transaction(engine, tenant.id) as session:
        raw = (await session.execute(text("SELECT * FROM orders"))).mappings().all()
        rolled = {
            (r.day, r.channel, r.region): (r.orders, r.gmv)
            for r in await session.execute(
                text(
                    "SELECT day, channel, region, sum(orders) AS orders, sum(gmv) AS gmv FROM kpi_customer_days GROUP BY 1, 2, 3"
                )
            )
        }
        whole = await measure(session, start, start + timedelta(days=19), grain=None, by=None)
    expected: dict[tuple[date, str, str], list[int]] = defaultdict(lambda: [0, 0])
    customers, firsts = set(), {}
    for o in raw:
        if o["status"] not in orders.PAID_STATUSES:
            continue
        day = o["placed_at"].astimezone(UTC).date()  # the tenant's time zone is UTC here
        net = Decimal(o["total"] - o["refunded"])
        converted = (
            net if o["currency"] == "CNY" else (net * Decimal("7.13")).quantize(Decimal(1), ROUND_HALF_UP)
        )
        where = (day, o["channel"], o["ship_region"] or "")
        expected[where][0] += 1
        expected[where][1] += int(converted)
        if o["customer_id"] is not None:
            customers.add(o["customer_id"])
            firsts[o["customer_id"]] = min(firsts.get(o["customer_id"], day), day)
    assert rolled == {k: tuple(v) for k, v in expected.items()}
    (totals,) = whole.values()
    assert totals.orders == sum(v[0] for v in expected.values())
    assert totals.gmv == Decimal(sum(v[1] for v in expected.values())) / 100
    assert totals.active_customers == len(customers) and totals.new_customers == len(customers)
    # The job keeps them up to date: new and changed orders since, then the same as a rebuild.
    changed = [
        batch[0]._replace(status="cancelled", updated_at=datetime.now(UTC)),
        batch[1]._replace(external_id="R-new", updated_at=datetime.now(UTC)),
    ]
    async with tenant_transaction(engine, tenant.id) as session:
        await orders.ingest(session, [orders.validate(o) for o in changed])
    async with tenant_transaction(engine, tenant.id) as session:
        await rollup.catch_up(session)
        caught = (
            await session.execute(
                text("SELECT * FROM kpi_customer_days ORDER BY day, channel, region, customer_id")
            )
        ).all()
        await rollup.rebuild(session, start - timedelta(days=1), start + timedelta(days=21))
        rebuilt = (
            await session.execute(
                text("SELECT * FROM kpi_customer_days ORDER BY day, channel, region, customer_id")
            )
        ).all()
    assert caught == rebuilt and caught != []
    assert uuid.UUID(int=0) in {r.customer_id for r in caught}  # buyerless orders kept under the nil id


async def test_the_alert_list_shows_what_turned_at_risk_or_off_track_since_the_last_look(
    engine: AsyncEngine, gql: GraphQLClient, tenant: Tenant
) -> None:
    await in_shanghai(gql, tenant)
    await record(gql, tenant, "A1", TODAY, 10000, buyer={"email": "al@kpi.example"})
    await settle(engine, tenant)
    period = {"dayFrom": (TODAY - timedelta(days=29)).isoformat(), "dayUntil": TODAY.isoformat()}
    target = """mutation($input: KpiTargetInput!) { setKpiTarget(input: $input) { userErrors { code } } }"""
    alerts = "{ kpiAlerts { kpi { key } status } }"
    seen = "mutation { markKpiAlertsSeen(input: {}) { seen } }"
    assert (await gql.data(tenant.key, alerts))["kpiAlerts"] == []  # no targets: nothing to act on
    await gql.data(tenant.key, target, {"input": {"kpi": "gmv", "target": 105, **period}})
    assert (await gql.data(tenant.key, alerts))["kpiAlerts"] == [{"kpi": {"key": "gmv"}, "status": "AT_RISK"}]
    assert (await gql.data(tenant.key, seen))["markKpiAlertsSeen"]["seen"] == 16
    assert (await gql.data(tenant.key, alerts))["kpiAlerts"] == []  # seen
    await gql.data(tenant.key, target, {"input": {"kpi": "gmv", "target": 500, **period}})
    assert (await gql.data(tenant.key, alerts))["kpiAlerts"] == [
        {"kpi": {"key": "gmv"}, "status": "OFF_TRACK"}
    ]
    other_viewer = tenant.keys[next(r for r in tenant.keys if r != next(iter(tenant.keys)))]
    assert (await gql.data(other_viewer, alerts))["kpiAlerts"] == [
        {"kpi": {"key": "gmv"}, "status": "OFF_TRACK"}
    ]


async def test_open_conflicts_counts_those_open_at_the_periods_end(
    engine: AsyncEngine, gql: GraphQLClient, tenant: Tenant
) -> None:
    partner = """mutation { createChannelPartner(input: {name: "Tea House", level: RETAILER, channel: "shopee",
      authorised: true}) { partner { id } } }"""
    partner_id = (await gql.data(tenant.key, partner))["createChannelPartner"]["partner"]["id"]
    record_conflict = """mutation($cause: ConflictCause!, $p: ID!) { recordConflict(input: {type: HORIZONTAL,
      cause: $cause, partnerId: $p}) { conflict { id } } }"""
    ids = [
        (await gql.data(tenant.key, record_conflict, {"cause": cause, "p": partner_id}))["recordConflict"][
            "conflict"
        ]["id"]
        for cause in ("CUSTOMER_POACHING", "CAMPAIGN_NON_EXECUTION", "OTHER")
    ]
    dismiss = """mutation($id: ID!) { transitionConflict(input: {id: $id, status: DISMISSED, note: "duplicate"}) {
      userErrors { code } } }"""
    assert (await gql.data(tenant.key, dismiss, {"id": ids[0]}))["transitionConflict"]["userErrors"] == []
    widgets = [{"section": "channel", "kpi": "open_conflicts", "days": 7, "grain": "day"}]
    shown = (await gql.data(tenant.key, SAVE, {"input": {"name": "C", "widgets": widgets}}))["saveDashboard"]
    (widget,) = shown["dashboard"]["widgets"]
    assert widget["value"] == 2  # three recorded today, one dismissed
    assert widget["series"][-1]["value"] == 2 and widget["series"][0]["value"] == 0  # none open a week ago


async def test_bad_spend_is_refused_whole(gql: GraphQLClient, tenant: Tenant) -> None:
    spend = """mutation($input: RecordMarketingSpendInput!) { recordMarketingSpend(input: $input) {
      recorded userErrors { field code } } }"""
    good = {"channel": "shopee", "dayFrom": "2026-11-01", "dayUntil": "2026-11-30", "amount": 100}
    bad = [good, {**good, "channel": "Not A Key"}, {**good, "dayFrom": "2026-12-01"}, {**good, "amount": -1}]
    refused = (await gql.data(tenant.key, spend, {"input": {"entries": bad}}))["recordMarketingSpend"]
    assert refused == {"recorded": 0, "userErrors": [
        {"field": "entries.1.channel", "code": "INVALID_CHANNEL"},
        {"field": "entries.2.dayUntil", "code": "INVALID_PERIOD"},
        {"field": "entries.3.amount", "code": "INVALID_AMOUNT"},
    ]}  # fmt: skip
    widgets = [{"section": "channel", "kpi": "marketing_spend", "days": 365}]
    shown = (await gql.data(tenant.key, SAVE, {"input": {"name": "S", "widgets": widgets}}))["saveDashboard"]
    assert shown["dashboard"]["widgets"][0]["value"] == 0  # nothing of the batch was kept
    assert (await gql.data(tenant.key, spend, {"input": {"entries": []}}))["recordMarketingSpend"][
        "userErrors"
    ] == [{"field": "entries", "code": "INVALID_COUNT"}]


async def test_two_roll_ups_of_the_same_days_at_once_take_turns(
    engine: AsyncEngine, gql: GraphQLClient, tenant: Tenant
) -> None:
    for n in range(30):
        await record(
            gql,
            tenant,
            f"C{n}",
            TODAY - timedelta(days=n % 3),
            1000 + n,
            buyer={"email": f"c{n}@kpi.example"},
        )

    async def job() -> int:
        async with tenant_transaction(engine, tenant.id) as session:
            return await rollup.catch_up(session)  # the job and an import's catch-up, say

    assert sorted(await asyncio.gather(job(), job(), job())) == [3, 3, 3]
    async with tenant_transaction(engine, tenant.id) as session:
        rolled = await session.execute(text("SELECT sum(orders), sum(gmv) FROM kpi_customer_days"))
    assert tuple(rolled.one()) == (30, sum(1000 + n for n in range(30)))
