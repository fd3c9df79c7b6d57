"""The loyalty and survey KPIs through the API on fixed datasets computed by hand: points,
members, tiers, NPS, response rate, detractor follow-up on time."""

from __future__ import annotations

import math
from typing import Any

import httpx
from kpis_support import settle
from loyalty_support import backdate_rules, order, program, rules
from nps_support import customer, survey
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from brandloop.db.session import platform_transaction
from support import GraphQLClient, Tenant

SAVE = """mutation($input: SaveDashboardInput!) { saveDashboard(input: $input) {
  dashboard { widgets { kpi { key } value marginOfError breakdown { key value } } } userErrors { field code } } }"""
TIERS = (
    """mutation($input: SetLoyaltyTiersInput!) { setLoyaltyTiers(input: $input) { userErrors { code } } }"""
)
REWARD = (
    """mutation($input: CreateLoyaltyRewardInput!) { createLoyaltyReward(input: $input) { reward { id } } }"""
)
REDEEM = """mutation($input: RedeemRewardInput!) { redeemReward(input: $input) { userErrors { code } } }"""
INVITE = """mutation($input: InviteToSurveyInput!) { inviteToSurvey(input: $input) {
  invitations { link customer { id } } skippedNoConsent } }"""
TASKS = "{ npsTasks { edges { node { id response { score } } } } }"
UPDATE_TASK = """mutation($input: UpdateNpsTaskInput!) { updateNpsTask(input: $input) {
  task { followedUpAt } userErrors { code } } }"""


async def shown(gql: GraphQLClient, tenant: Tenant, widgets: list[dict[str, Any]]) -> dict[str, Any]:
    saved = (await gql.data(tenant.key, SAVE, {"input": {"name": "T", "widgets": widgets}}))["saveDashboard"]
    assert saved["userErrors"] == []
    return {w["kpi"]["key"]: w for w in saved["dashboard"]["widgets"]}


async def test_points_members_and_tiers_equal_the_hand_computation(
    engine: AsyncEngine, gql: GraphQLClient, tenant: Tenant
) -> None:
    # W buys twice before the program exists: a repeat buyer, never a member.
    await order(gql, tenant, "W1", placed=-50, buyer={"email": "w@kpi.example"})
    await order(gql, tenant, "W2", placed=-49, buyer={"email": "w@kpi.example"})
    program_id = await program(gql, tenant)
    await rules(gql, tenant, program_id, pointsPerUnit="1")
    await backdate_rules(engine, tenant, days=1)
    ladder = [
        {"name": "Green", "spendThreshold": 0, "interactionThreshold": 0},
        {"name": "Silver", "spendThreshold": 15_000, "interactionThreshold": 0},
    ]
    tiers = await gql.data(tenant.key, TIERS, {"input": {"programId": program_id, "tiers": ladder}})
    assert tiers["setLoyaltyTiers"]["userErrors"] == []
    # X: two orders of 100.00, members from the first (Green), Silver after the second; Y: one order.
    x = {"email": "x@kpi.example"}
    await order(gql, tenant, "X1", placed=-20, buyer=x)
    await order(gql, tenant, "X2", placed=-19, buyer=x)
    y_id = (await order(gql, tenant, "Y1", placed=-18, buyer={"email": "y@kpi.example"}))["order"][
        "customer"
    ]["id"]
    reward = await gql.data(
        tenant.key,
        REWARD,
        {"input": {"programId": program_id, "name": "Sampler", "kind": "FREE_PRODUCT", "pointsCost": 30}},
    )
    redeemed = await gql.data(
        tenant.key,
        REDEEM,
        {
            "input": {
                "rewardId": reward["createLoyaltyReward"]["reward"]["id"],
                "customerId": y_id,
                "idempotencyKey": "r1",
            }
        },
    )
    assert redeemed["redeemReward"]["userErrors"] == []
    # Enrolled by their first order, which was placed a little before it was recorded (and may
    # be yesterday, when this runs just after midnight): they joined with that order.
    async with platform_transaction(engine) as session:
        await session.execute(
            text(
                """UPDATE loyalty_accounts a SET enrolled_at = (SELECT min(placed_at) FROM orders o
                    WHERE o.tenant_id = a.tenant_id AND o.customer_id = a.customer_id) WHERE a.tenant_id = :t"""
            ),
            {"t": tenant.id},
        )
    await settle(engine, tenant)
    keys = ["points_issued", "points_redeemed", "points_liability", "redemption_rate", "member_repurchase_rate",
            "repeat_purchase_rate", "tier_penetration"]  # fmt: skip
    widgets = [{"section": "digital", "kpi": k, "days": 7} for k in keys]
    widgets.append({"section": "digital", "kpi": "tier_penetration", "days": 7, "breakdown": "tier"})
    found = await shown(gql, tenant, widgets)
    assert {k: found[k]["value"] for k in keys} == {
        "points_issued": 300,  # 100 + 100 (X) + 100 (Y): points are earned at the tier held when buying
        "points_redeemed": 30,
        "points_liability": 270,
        "redemption_rate": 0.1,
        "member_repurchase_rate": 0.5,  # X of X and Y; W bought twice but is no member
        "repeat_purchase_rate": round(2 / 3, 6),  # W and X of W, X, Y
        "tier_penetration": 0.5,  # X holds Silver, above the entry tier; Y holds Green
    }
    saved = await gql.data(
        tenant.key,
        SAVE,
        {"input": {"name": "T", "widgets": [widgets[-1]]}},
    )
    rows = saved["saveDashboard"]["dashboard"]["widgets"][0]["breakdown"]
    assert sorted((r["key"], r["value"]) for r in rows) == [("Green", 0.5), ("Silver", 0.5)]


async def test_nps_response_rate_and_follow_up_on_time_equal_the_hand_computation(
    engine: AsyncEngine, gql: GraphQLClient, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    survey_id = await survey(gql, tenant)
    people = [await customer(gql, tenant, n) for n in "ABCDEGH"] + [await customer(gql, tenant, "F", False)]
    invited = await gql.data(
        tenant.key,
        INVITE,
        {"input": {"surveyId": survey_id, "customerIds": people, "channel": "wechat", "campaignKey": "k"}},
    )
    assert invited["inviteToSurvey"]["skippedNoConsent"] == 1  # F: not sent, not counted
    links = {i["customer"]["id"]: i["link"] for i in invited["inviteToSurvey"]["invitations"]}
    # The invitations went out five days ago; the job last looked before anyone answered.
    async with platform_transaction(engine) as session:
        await session.execute(
            text(
                "UPDATE nps_invitations SET created_at = created_at - interval '5 days' WHERE tenant_id = :t"
            ),
            {"t": tenant.id},
        )
    await settle(engine, tenant)
    # A, B, C promoters; D passive; E, G detractors; H does not answer.
    for person, score in zip(people, [10, 9, 10, 7, 3, 2], strict=False):
        answered = await client.post("/surveys/" + links[person].rsplit("/", 1)[1], json={"score": score})
        assert answered.status_code == 201
    tasks = (await gql.data(tenant.key, TASKS))["npsTasks"]["edges"]
    contacted = next(t["node"]["id"] for t in tasks if t["node"]["response"]["score"] == 3)
    updated = await gql.data(tenant.key, UPDATE_TASK, {"input": {"id": contacted, "status": "CONTACTED"}})
    assert updated["updateNpsTask"]["task"]["followedUpAt"] is not None
    async with platform_transaction(engine) as session:  # three days pass: both tasks fell due
        await session.execute(
            text(
                """UPDATE nps_tasks SET due_at = due_at - interval '3 days', created_at = created_at - interval '3 days',
                          followed_up_at = followed_up_at - interval '3 days' WHERE tenant_id = :t"""
            ),
            {"t": tenant.id},
        )
    await settle(engine, tenant)
    keys = ["nps", "survey_responses", "survey_response_rate", "follow_up_on_time_rate"]
    found = await shown(gql, tenant, [{"section": "digital", "kpi": k, "days": 7} for k in keys])
    # Promoters 3/6 = 0.5, detractors 2/6: NPS 16.67; MoE = 1.96 x sqrt((0.5 + 1/3 - (1/6)^2) / 6) x 100.
    p, d = 0.5, 1 / 3
    assert {k: found[k]["value"] for k in keys} == {
        "nps": round((p - d) * 100, 6),
        "survey_responses": 6,
        "survey_response_rate": round(6 / 7, 6),  # the answers reached the invitations' day, five days back
        "follow_up_on_time_rate": 0.5,  # E's contacted in time, G's never
    }
    assert math.isclose(found["nps"]["marginOfError"], 1.96 * math.sqrt((p + d - (p - d) ** 2) / 6) * 100)
