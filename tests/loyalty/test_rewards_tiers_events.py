"""Rewards and redemption, tiers, event points, merges and program statistics, through the API."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from test_loyalty_api import (
    NOW,
    account,
    adjust,
    at,
    backdate_rules,
    balance,
    no_drift,
    order,
    program,
    rules,
)

from brandloop.auth.permissions import Role
from brandloop.db.session import tenant_transaction
from brandloop.loyalty import ledger, tiers
from support import GraphQLClient, Tenant

REDEEM = """
mutation($input: RedeemRewardInput!) {
  redeemReward(input: $input) { redemption { id code points status } userErrors { field code message } }
}"""
CREATE_REWARD = """
mutation($input: CreateLoyaltyRewardInput!) {
  createLoyaltyReward(input: $input) { reward { id stock } userErrors { field code message } }
}"""
AWARD = """
mutation($input: AwardEventPointsInput!) {
  awardEventPoints(input: $input) { awards { entry { points } skipped } userErrors { field code message } }
}"""
TIERS = """
mutation($input: SetLoyaltyTiersInput!) {
  setLoyaltyTiers(input: $input) { tiers { name rank } userErrors { field code message } }
}"""
TIER = """
query($id: ID!) { customer(id: $id) { loyalty {
  tier { name } tierHistory { upgrade from { name } to { name } }
} } }"""


async def reward(gql: GraphQLClient, tenant: Tenant, program_id: str, **given: Any) -> str:
    data = await gql.data(
        tenant.key,
        CREATE_REWARD,
        {
            "input": {
                "programId": program_id,
                "name": "Tea sampler",
                "kind": "FREE_PRODUCT",
                "pointsCost": 10,
                **given,
            }
        },
    )
    payload = data["createLoyaltyReward"]
    assert payload["userErrors"] == []
    return str(payload["reward"]["id"])


async def redeem(
    gql: GraphQLClient, tenant: Tenant, customer: str, reward_id: str, key: str
) -> dict[str, Any]:
    data = await gql.data(
        tenant.keys[Role.MARKETER],
        REDEEM,
        {"input": {"customerId": customer, "rewardId": reward_id, "idempotencyKey": key}},
    )
    return dict(data["redeemReward"])


async def member_with(gql: GraphQLClient, tenant: Tenant, points: int) -> tuple[str, str]:
    """A program and a customer holding `points` available points."""
    program_id = await program(gql, tenant)
    customer = (await order(gql, tenant, "A"))["order"]["customer"]["id"]
    granted = await adjust(gql, tenant, program_id, customer, points, "grant")
    assert granted["userErrors"] == []
    return program_id, customer


# -- redemption ------------------------------------------------------------------------------------


async def test_fifty_concurrent_redemptions_against_a_balance_for_ten(
    gql: GraphQLClient, tenant: Tenant
) -> None:
    program_id, customer = await member_with(gql, tenant, 105)
    reward_id = await reward(gql, tenant, program_id)
    results = await asyncio.gather(*(redeem(gql, tenant, customer, reward_id, f"r-{n}") for n in range(50)))
    succeeded = [r for r in results if r["userErrors"] == []]
    assert len(succeeded) == 10
    assert len({r["redemption"]["code"] for r in succeeded}) == 10
    refused = {e["code"] for r in results if r["userErrors"] for e in r["userErrors"]}
    assert refused == {"INSUFFICIENT_POINTS"}
    assert (await balance(gql, tenant, customer))["total"] == 5
    await no_drift(gql, tenant)


async def test_a_replayed_key_returns_the_same_redemption(gql: GraphQLClient, tenant: Tenant) -> None:
    program_id, customer = await member_with(gql, tenant, 100)
    reward_id = await reward(gql, tenant, program_id)
    first, again = await asyncio.gather(
        redeem(gql, tenant, customer, reward_id, "same"), redeem(gql, tenant, customer, reward_id, "same")
    )
    assert first["redemption"] == again["redemption"]
    assert (await balance(gql, tenant, customer))["total"] == 90
    other_reward = await reward(gql, tenant, program_id, name="Cup")
    reused = await redeem(gql, tenant, customer, other_reward, "same")
    assert [e["code"] for e in reused["userErrors"]] == ["KEY_REUSED"]


async def test_stock_limits_validity_and_tier_are_checked(gql: GraphQLClient, tenant: Tenant) -> None:
    program_id, customer = await member_with(gql, tenant, 1000)
    scarce = await reward(gql, tenant, program_id, stock=1)
    assert (await redeem(gql, tenant, customer, scarce, "s1"))["userErrors"] == []
    out = await redeem(gql, tenant, customer, scarce, "s2")
    assert [e["code"] for e in out["userErrors"]] == ["OUT_OF_STOCK"]
    once = await reward(gql, tenant, program_id, name="Once", perCustomerLimit=1)
    assert (await redeem(gql, tenant, customer, once, "o1"))["userErrors"] == []
    assert [e["code"] for e in (await redeem(gql, tenant, customer, once, "o2"))["userErrors"]] == [
        "LIMIT_REACHED"
    ]
    later = await reward(gql, tenant, program_id, name="Later", validFrom=at(60))
    assert [e["code"] for e in (await redeem(gql, tenant, customer, later, "l"))["userErrors"]] == [
        "NOT_AVAILABLE"
    ]
    gold_only = await reward(gql, tenant, program_id, name="Gold", minTierRank=1)
    assert [e["code"] for e in (await redeem(gql, tenant, customer, gold_only, "g"))["userErrors"]] == [
        "TIER_TOO_LOW"
    ]
    bad = await gql.data(
        tenant.key,
        CREATE_REWARD,
        {"input": {"programId": program_id, "name": "", "kind": "GIFT", "pointsCost": 0, "stock": -1}},
    )
    assert {e["code"] for e in bad["createLoyaltyReward"]["userErrors"]} == {
        "INVALID_NAME",
        "INVALID_POINTS",
        "INVALID_STOCK",
    }
    assert (await balance(gql, tenant, customer))["total"] == 980


async def test_a_cancelled_redemption_puts_points_back_with_their_expiry(
    engine: AsyncEngine, gql: GraphQLClient, tenant: Tenant
) -> None:
    program_id = await program(gql, tenant, expiryPolicy="MONTHS", expiryPeriod=1)
    await rules(gql, tenant, program_id, pointsPerUnit="1")
    await backdate_rules(engine, tenant, days=10)
    customer = (await order(gql, tenant, "A", placed=-60 * 24 * 9))["order"]["customer"]["id"]
    reward_id = await reward(gql, tenant, program_id, pointsCost=30, stock=5)
    redemption = (await redeem(gql, tenant, customer, reward_id, "r"))["redemption"]
    cancel = """mutation($input: CancelRedemptionInput!) {
      cancelRedemption(input: $input) { redemption { status cancelReason } userErrors { code } } }"""
    for _ in range(2):  # twice: the second changes nothing
        done = await gql.data(
            tenant.key, cancel, {"input": {"id": redemption["id"], "reason": "out of stock at store"}}
        )
        assert done["cancelRedemption"]["redemption"] == {
            "status": "CANCELLED",
            "cancelReason": "out of stock at store",
        }
    assert (await balance(gql, tenant, customer))["total"] == 100
    stock = await gql.data(
        tenant.key, "query($id: ID!) { node(id: $id) { ... on LoyaltyReward { stock } } }", {"id": reward_id}
    )
    assert stock["node"]["stock"] == 5
    # The points went back into the order's lot: they expire with it, all 100 at once.
    async with tenant_transaction(engine, tenant.id) as session:
        assert await ledger.expire_points(session, now=NOW + timedelta(days=23)) == 1
    assert (await balance(gql, tenant, customer))["expired"] == 100
    await no_drift(gql, tenant)


# -- tiers -----------------------------------------------------------------------------------------


LADDER = [
    {"name": "Green", "spendThreshold": 0, "interactionThreshold": 0},
    {"name": "Silver", "spendThreshold": 15_000, "interactionThreshold": 0, "multiplier": "1.5"},
    {"name": "Gold", "spendThreshold": 30_000, "interactionThreshold": 50, "multiplier": "2"},
]


async def test_tiers_rise_at_once_and_fall_one_step_at_review(
    engine: AsyncEngine, gql: GraphQLClient, tenant: Tenant
) -> None:
    program_id = await program(gql, tenant, tierReviewMonths=12)
    await rules(gql, tenant, program_id, pointsPerUnit="1", events=[{"kind": "REVIEW", "points": 50}])
    await backdate_rules(engine, tenant, days=1)
    set_ = await gql.data(tenant.key, TIERS, {"input": {"programId": program_id, "tiers": LADDER}})
    assert [t["name"] for t in set_["setLoyaltyTiers"]["tiers"]] == ["Green", "Silver", "Gold"]
    customer = (await order(gql, tenant, "A", total=10_000))["order"]["customer"]["id"]
    assert (await gql.data(tenant.key, TIER, {"id": customer}))["customer"]["loyalty"][0]["tier"] == {
        "name": "Green"
    }
    await order(gql, tenant, "B", placed=31, total=10_000)  # 200.00 spent: Silver at once
    await order(gql, tenant, "C", placed=32, total=10_000)  # 300.00, but no interaction yet: still Silver
    assert (await balance(gql, tenant, customer))["total"] == 100 + 100 + 150  # C earned at Silver's 1.5
    awarded = await gql.data(
        tenant.key,
        AWARD,
        {
            "input": {
                "customerId": customer,
                "eventKind": "REVIEW",
                "idempotencyKey": "review-1",
                "occurredAt": at(0),
            }
        },
    )
    assert awarded["awardEventPoints"]["awards"][0]["entry"] == {"points": 50}
    view = (await gql.data(tenant.key, TIER, {"id": customer}))["customer"]["loyalty"][0]
    assert view["tier"] == {"name": "Gold"}
    assert [(h["from"], h["to"]) for h in view["tierHistory"]] == [
        ({"name": "Silver"}, {"name": "Gold"}),
        ({"name": "Green"}, {"name": "Silver"}),
        (None, {"name": "Green"}),
    ]
    # All three orders refunded: Gold is kept until the review, which lowers it by one step only.
    for n, external_id in enumerate("ABC"):
        await order(
            gql,
            tenant,
            external_id,
            placed=30 + n,
            total=10_000,
            status="REFUNDED",
            refunded=10_000,
            version=1,
        )
    assert (await gql.data(tenant.key, TIER, {"id": customer}))["customer"]["loyalty"][0]["tier"] == {
        "name": "Gold"
    }
    async with tenant_transaction(engine, tenant.id) as session:
        assert await tiers.review(session, now=NOW + timedelta(days=30)) == 0  # not due yet
    async with tenant_transaction(engine, tenant.id) as session:
        assert await tiers.review(session, now=NOW + timedelta(days=370)) == 1
    assert (await gql.data(tenant.key, TIER, {"id": customer}))["customer"]["loyalty"][0]["tier"] == {
        "name": "Silver"
    }


async def test_a_ladder_is_validated_and_a_held_tier_stays(gql: GraphQLClient, tenant: Tenant) -> None:
    program_id = await program(gql, tenant)
    bad = await gql.data(
        tenant.key,
        TIERS,
        {
            "input": {
                "programId": program_id,
                "tiers": [
                    {"name": "Gold", "spendThreshold": 100, "interactionThreshold": 0},
                    {"name": "Silver", "spendThreshold": 50, "interactionThreshold": 0, "multiplier": "0"},
                ],
            }
        },
    )
    assert {(e["field"], e["code"]) for e in bad["setLoyaltyTiers"]["userErrors"]} == {
        ("tiers.1", "THRESHOLDS_NOT_RISING"),
        ("tiers.1.multiplier", "INVALID_MULTIPLIER"),
    }
    await gql.data(tenant.key, TIERS, {"input": {"programId": program_id, "tiers": LADDER}})
    await rules(gql, tenant, program_id, pointsPerUnit="1")
    await order(gql, tenant, "A")  # the customer holds Green now
    dropped = await gql.data(tenant.key, TIERS, {"input": {"programId": program_id, "tiers": LADDER[1:]}})
    assert [e["code"] for e in dropped["setLoyaltyTiers"]["userErrors"]] == ["TIER_IN_USE"]


# -- events ----------------------------------------------------------------------------------------


async def award(
    gql: GraphQLClient, tenant: Tenant, customer: str, kind: str, key: str, **more: Any
) -> dict[str, Any]:
    data = await gql.data(
        tenant.keys[Role.MARKETER],
        AWARD,
        {
            "input": {
                "customerId": customer,
                "eventKind": kind,
                "idempotencyKey": key,
                "occurredAt": at(0),
                **more,
            }
        },
    )
    return dict(data["awardEventPoints"])


async def test_event_points_respect_limits_budgets_and_replays(
    engine: AsyncEngine, gql: GraphQLClient, tenant: Tenant
) -> None:
    program_id = await program(gql, tenant)
    await rules(
        gql,
        tenant,
        program_id,
        pointsPerUnit="1",
        events=[
            {"kind": "REVIEW", "points": 20, "perCustomerMonthly": 2},
            {"kind": "CONTENT_SHARED", "points": 30, "monthlyBudget": 50},
        ],
    )
    await backdate_rules(engine, tenant, days=1)  # events happen "now", at the module's NOW
    mei = (await order(gql, tenant, "A"))["order"]["customer"]["id"]
    li = (await order(gql, tenant, "B", buyer={"email": "li@tealover.cn"}))["order"]["customer"]["id"]
    assert [a["entry"] for a in (await award(gql, tenant, mei, "REVIEW", "r1"))["awards"]] == [{"points": 20}]
    assert [a["entry"] for a in (await award(gql, tenant, mei, "REVIEW", "r1"))["awards"]] == [{"points": 20}]
    await award(gql, tenant, mei, "REVIEW", "r2")
    assert [a["skipped"] for a in (await award(gql, tenant, mei, "REVIEW", "r3"))["awards"]] == [
        "CUSTOMER_LIMIT"
    ]
    assert [a["skipped"] for a in (await award(gql, tenant, mei, "BIRTHDAY", "b"))["awards"]] == ["NO_RULE"]
    await award(gql, tenant, mei, "CONTENT_SHARED", "c1")
    assert [a["skipped"] for a in (await award(gql, tenant, li, "CONTENT_SHARED", "c2"))["awards"]] == [
        "BUDGET_EXHAUSTED"
    ]
    assert (await balance(gql, tenant, mei))["total"] == 100 + 20 + 20 + 30
    future = await award(gql, tenant, mei, "REVIEW", "f", occurredAt=at(60 * 24))
    assert [e["code"] for e in future["userErrors"]] == ["INVALID_TIME"]


async def test_a_referral_of_oneself_is_refused(
    engine: AsyncEngine, gql: GraphQLClient, tenant: Tenant
) -> None:
    program_id = await program(gql, tenant)
    await rules(
        gql, tenant, program_id, pointsPerUnit="1", events=[{"kind": "REFERRAL_CONVERTED", "points": 100}]
    )
    await backdate_rules(engine, tenant, days=1)
    mei = (await order(gql, tenant, "A", buyer={"email": "mei@tealover.cn", "phone": "+8613912345678"}))[
        "order"
    ]["customer"]["id"]
    alias = await order(
        gql, tenant, "B", buyer={"phone": "+8613912345678", "buyerId": "tt-9"}, channel="tiktok"
    )
    same_person = alias["order"]["customer"]["id"]
    friend = (await order(gql, tenant, "C", buyer={"email": "friend@tealover.cn"}))["order"]["customer"]["id"]
    missing = await award(gql, tenant, mei, "REFERRAL_CONVERTED", "x")
    assert [e["code"] for e in missing["userErrors"]] == ["REQUIRED"]
    for referred in (mei, same_person):
        refused = await award(
            gql, tenant, mei, "REFERRAL_CONVERTED", f"self-{referred}", referredCustomerId=referred
        )
        assert [e["code"] for e in refused["userErrors"]] == ["SELF_REFERRAL"]
    fine = await award(gql, tenant, mei, "REFERRAL_CONVERTED", "friend", referredCustomerId=friend)
    assert [a["entry"] for a in fine["awards"]] == [{"points": 100}]


# -- merges and statistics -------------------------------------------------------------------------

MERGE = """mutation($s: ID!, $m: [ID!]!) { mergeCustomers(input: {survivorId: $s, mergedIds: $m}) {
  merges { id } userErrors { code } } }"""
UNMERGE = "mutation($id: ID!) { unmergeCustomer(input: {id: $id}) { userErrors { code } } }"


async def test_points_follow_a_merge_and_come_back_with_an_unmerge(
    gql: GraphQLClient, tenant: Tenant
) -> None:
    program_id = await program(gql, tenant)
    await rules(gql, tenant, program_id, pointsPerUnit="1")
    mei = (await order(gql, tenant, "A"))["order"]["customer"]["id"]
    other = (await order(gql, tenant, "B", buyer={"buyerId": "tt-2"}, channel="tiktok", total=5_000))[
        "order"
    ]["customer"]["id"]
    merged = (await gql.data(tenant.key, MERGE, {"s": mei, "m": [other]}))["mergeCustomers"]
    assert merged["userErrors"] == []
    assert (await balance(gql, tenant, mei))["total"] == 150
    assert (await balance(gql, tenant, other))["total"] == 0
    # The merged profile's order, refunded after the merge, reverses from the survivor.
    await order(
        gql,
        tenant,
        "B",
        buyer={"buyerId": "tt-2"},
        channel="tiktok",
        total=5_000,
        status="REFUNDED",
        refunded=5_000,
        version=1,
    )
    assert (await balance(gql, tenant, mei))["total"] == 100
    await order(
        gql, tenant, "B", buyer={"buyerId": "tt-2"}, channel="tiktok", total=5_000, version=2
    )  # reinstated
    assert (await balance(gql, tenant, mei))["total"] == 150
    unmerged = await gql.data(tenant.key, UNMERGE, {"id": other})
    assert unmerged["unmergeCustomer"]["userErrors"] == []
    # What is left of the moved lot goes back (the reversal took the survivor's oldest points);
    # the points earned meanwhile stay where they were earned. Nothing is created or lost.
    assert (await balance(gql, tenant, mei))["total"] + (await balance(gql, tenant, other))["total"] == 150
    assert (await balance(gql, tenant, other))["total"] == 50
    await no_drift(gql, tenant)


async def test_program_statistics(gql: GraphQLClient, tenant: Tenant) -> None:
    program_id = await program(gql, tenant, pointCost="2.5")
    customer = (await order(gql, tenant, "A"))["order"]["customer"]["id"]
    await adjust(gql, tenant, program_id, customer, 100, "grant")
    reward_id = await reward(gql, tenant, program_id, pointsCost=40)
    await redeem(gql, tenant, customer, reward_id, "r")
    stats = await gql.data(
        tenant.keys[Role.ANALYST],
        """query($id: ID!) { loyaltyProgram(id: $id) { statistics {
          members activeMembers pointsIssued pointsRedeemed pointsExpired pointsOutstanding liability redemptionRate
        } } }""",
        {"id": program_id},
    )
    assert stats["loyaltyProgram"]["statistics"] == {
        "members": 1,
        "activeMembers": 1,
        "pointsIssued": 100,
        "pointsRedeemed": 40,
        "pointsExpired": 0,
        "pointsOutstanding": 60,
        "liability": 150,
        "redemptionRate": 0.4,
    }
    assert (await account(gql, tenant, customer))["balance"]["spent"] == 40


async def test_another_tenants_reward_cannot_be_redeemed(
    gql: GraphQLClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    _, customer = await member_with(gql, tenant, 100)
    their_program, _ = await member_with(gql, other_tenant, 100)
    theirs = await reward(gql, other_tenant, their_program)
    refused = await redeem(gql, tenant, customer, theirs, "cross")
    assert [e["code"] for e in refused["userErrors"]] == ["NOT_FOUND"]
    assert (await balance(gql, tenant, customer))["total"] == 100
