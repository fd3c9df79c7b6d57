"""Loyalty through the API: programs, versioned rules, accrual from orders, the ledger and its books."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from loyalty_support import (
    CHECK,
    CREATE_PROGRAM,
    LOYALTY,
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
from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.ext.asyncio import AsyncEngine

from brandloop.auth.permissions import Role
from brandloop.db.session import platform_transaction, tenant_transaction
from brandloop.loyalty import ledger
from support import GraphQLClient, Tenant

# -- programs and rules --------------------------------------------------------------------------


async def test_programs_are_validated_and_need_the_manage_permission(
    gql: GraphQLClient, tenant: Tenant
) -> None:
    await program(gql, tenant)
    data = await gql.data(
        tenant.key,
        CREATE_PROGRAM,
        {
            "input": {
                "name": "Tea Club",
                "pointsName": "x" * 41,
                "channels": ["Not A Channel"],
                "expiryPolicy": "MONTHS",
                "pendingDays": -1,
            }
        },
    )
    codes = {(e["field"], e["code"]) for e in data["createLoyaltyProgram"]["userErrors"]}
    assert codes == {
        ("name", "NAME_TAKEN"),
        ("pointsName", "INVALID_NAME"),
        ("channels.0", "INVALID_CHANNEL"),
        ("expiryPeriod", "INVALID_EXPIRY"),
        ("pendingDays", "INVALID_PENDING_DAYS"),
    }
    body = await gql(tenant.keys[Role.MARKETER], CREATE_PROGRAM, {"input": {"name": "X", "pointsName": "P"}})
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    listed = await gql.data(tenant.keys[Role.VIEWER], "{ loyaltyPrograms { name pointsName enrolment } }")
    assert listed["loyaltyPrograms"] == [
        {"name": "Tea Club", "pointsName": "Leaves", "enrolment": "AUTOMATIC"}
    ]


async def test_rules_are_validated_when_saved(gql: GraphQLClient, tenant: Tenant) -> None:
    program_id = await program(gql, tenant)
    campaign = {"name": "Double 11", "startsAt": at(0), "endsAt": at(60), "factor": "2"}
    saved = await rules(
        gql,
        tenant,
        program_id,
        pointsPerUnit="-1",
        multipliers=[
            {"appliesTo": "CHANNEL", "value": "tiktok", "factor": "2"},
            {"appliesTo": "CHANNEL", "value": "tiktok", "factor": "3"},
        ],
        campaigns=[campaign, {**campaign, "name": "Member week", "stacking": "BEST"}],
    )
    assert saved["ruleVersion"] is None
    codes = {(e["field"], e["code"]) for e in saved["userErrors"]}
    assert ("rules.pointsPerUnit", "INVALID_RULE") in codes
    # pydantic stops at the first error of a field; the document's own checks run once it parses.
    saved = await rules(
        gql,
        tenant,
        program_id,
        pointsPerUnit="1",
        multipliers=[
            {"appliesTo": "CHANNEL", "value": "tiktok", "factor": "2"},
            {"appliesTo": "CHANNEL", "value": "tiktok", "factor": "3"},
        ],
        campaigns=[campaign, {**campaign, "name": "Member week", "stacking": "BEST"}],
    )
    codes = {(e["field"], e["code"]) for e in saved["userErrors"]}
    assert codes == {
        ("rules.multipliers.1", "DUPLICATE_MULTIPLIER"),
        ("rules.campaigns.0.stacking", "STACKING_REQUIRED"),
    }
    past = await rules(gql, tenant, program_id, at(-10), pointsPerUnit="1")
    assert [e["code"] for e in past["userErrors"]] == ["IN_THE_PAST"]
    first = await rules(gql, tenant, program_id, pointsPerUnit="1")
    assert first["ruleVersion"]["version"] == 1
    second = await rules(gql, tenant, program_id, at(60), pointsPerUnit="2")
    assert second["ruleVersion"]["version"] == 2
    before_latest = await rules(gql, tenant, program_id, at(30), pointsPerUnit="3")
    assert [e["code"] for e in before_latest["userErrors"]] == ["NOT_AFTER_LATEST"]


# -- accrual -------------------------------------------------------------------------------------


async def test_an_order_earns_by_the_rules_in_force_when_it_was_paid(
    gql: GraphQLClient, tenant: Tenant
) -> None:
    program_id = await program(gql, tenant)
    await rules(gql, tenant, program_id, pointsPerUnit="1")
    await rules(gql, tenant, program_id, at(60), pointsPerUnit="2")
    customer = (await order(gql, tenant, "A", placed=30))["order"]["customer"]["id"]
    await order(gql, tenant, "B", placed=90)
    await order(gql, tenant, "C", placed=95, status="PENDING")  # not paid: earns nothing yet
    ledger = (await account(gql, tenant, customer))["ledger"]
    assert [(e["node"]["points"], e["node"]["kind"], e["node"]["ruleVersion"]) for e in ledger["edges"]] == [
        (100, "EARN", 1),
        (200, "EARN", 2),
    ]
    # A version saved later never revalues what was paid before it.
    await rules(gql, tenant, program_id, at(120), pointsPerUnit="10")
    await order(gql, tenant, "A", placed=30, version=1)
    assert (await balance(gql, tenant, customer))["total"] == 300
    await no_drift(gql, tenant)


async def test_multipliers_and_campaigns_stack_as_documented(gql: GraphQLClient, tenant: Tenant) -> None:
    program_id = await program(gql, tenant)
    await rules(
        gql,
        tenant,
        program_id,
        pointsPerUnit="1",
        multipliers=[
            {"appliesTo": "CHANNEL", "value": "tiktok", "factor": "2"},
            {"appliesTo": "CATEGORY", "value": "tea", "factor": "3"},
            {"appliesTo": "SKU", "value": "GIFT-BOX", "factor": "5"},
        ],
        campaigns=[
            {"name": "Best A", "startsAt": at(0), "endsAt": at(60), "factor": "1.5", "stacking": "BEST"},
            {"name": "Best B", "startsAt": at(0), "endsAt": at(60), "factor": "1.2", "stacking": "BEST"},
            {"name": "Stack", "startsAt": at(0), "endsAt": at(60), "factor": "1.1", "stacking": "STACK"},
            {"name": "Later", "startsAt": at(200), "endsAt": at(300), "factor": "9"},
        ],
    )
    lines = [
        {"sku": "LEAF", "productName": "Leaf tea", "category": "tea", "quantity": 2, "unitPrice": 2_000},
        {"sku": "GIFT-BOX", "productName": "Gift box", "category": "tea", "quantity": 1, "unitPrice": 4_000},
        {"sku": "CUP", "productName": "Cup", "category": "ware", "quantity": 1, "unitPrice": 2_000},
    ]
    paid = await order(gql, tenant, "M", channel="tiktok", total=10_000, lines=lines)
    customer = paid["order"]["customer"]["id"]
    # spend 100 x product factor (40x3 + 40x5 + 20x1) / 100 = 3.4 x channel 2 x best 1.5 x stack 1.1
    assert (await balance(gql, tenant, customer))["total"] == int(100 * 3.4 * 2 * 1.5 * 1.1)  # 1122
    # Outside the campaigns, on another channel: 100 x 3.4 only.
    await order(gql, tenant, "N", channel="shopee", placed=90, total=10_000, lines=lines)
    assert (await balance(gql, tenant, customer))["total"] == 1122 + 340


async def test_caps_limit_what_a_customer_earns_per_day(gql: GraphQLClient, tenant: Tenant) -> None:
    program_id = await program(gql, tenant)
    await rules(gql, tenant, program_id, pointsPerUnit="1", dailyCap=150)
    customer = (await order(gql, tenant, "A", placed=30))["order"]["customer"]["id"]
    await order(gql, tenant, "B", placed=31)
    await order(gql, tenant, "C", placed=32)
    ledger = (await account(gql, tenant, customer))["ledger"]
    assert [e["node"]["points"] for e in ledger["edges"]] == [100, 50]
    await order(gql, tenant, "D", placed=60 * 24 + 30)  # the next day
    assert (await balance(gql, tenant, customer))["total"] == 250


async def test_refunds_reverse_proportionally_and_replays_change_nothing(
    gql: GraphQLClient, tenant: Tenant
) -> None:
    program_id = await program(gql, tenant)
    await rules(gql, tenant, program_id, pointsPerUnit="1")
    customer = (await order(gql, tenant, "A"))["order"]["customer"]["id"]
    again = await order(gql, tenant, "A")
    assert again["outcome"] == "UNCHANGED"
    await order(gql, tenant, "A", version=1)  # a newer version of the same order, same amounts
    assert (await balance(gql, tenant, customer))["total"] == 100
    await order(gql, tenant, "A", status="PARTIALLY_REFUNDED", refunded=3_000, version=2)
    assert (await balance(gql, tenant, customer))["total"] == 70
    await order(gql, tenant, "A", status="REFUNDED", refunded=10_000, version=3)
    ledger = (await account(gql, tenant, customer))["ledger"]
    assert [(e["node"]["points"], e["node"]["kind"]) for e in ledger["edges"]] == [
        (100, "EARN"),
        (-30, "REVERSE"),
        (-70, "REVERSE"),
    ]
    assert (await balance(gql, tenant, customer))["total"] == 0
    await no_drift(gql, tenant)


async def test_a_reversal_beyond_the_balance_leaves_a_debt_that_earning_pays_first(
    engine: AsyncEngine, gql: GraphQLClient, tenant: Tenant
) -> None:
    program_id = await program(gql, tenant)
    await rules(gql, tenant, program_id, pointsPerUnit="1")
    await backdate_rules(engine, tenant, days=1)
    customer = (await order(gql, tenant, "A", placed=-60))["order"]["customer"]["id"]
    spent = await adjust(gql, tenant, program_id, customer, -80, "k1")
    assert spent["userErrors"] == []
    await order(gql, tenant, "A", placed=-60, status="CANCELLED", version=1)
    assert (await balance(gql, tenant, customer))["total"] == -80
    await order(gql, tenant, "B", placed=-50)
    assert (await balance(gql, tenant, customer))["total"] == 20
    await no_drift(gql, tenant)


async def test_explicit_enrolment_and_pending_points(gql: GraphQLClient, tenant: Tenant) -> None:
    program_id = await program(gql, tenant, enrolment="EXPLICIT", pendingDays=14)
    await rules(gql, tenant, program_id, pointsPerUnit="1")
    customer = (await order(gql, tenant, "A"))["order"]["customer"]["id"]
    data = await gql.data(tenant.key, LOYALTY, {"id": customer})
    assert data["customer"]["loyalty"] == []  # not enrolled: the order earned nothing
    enrolled = await gql.data(
        tenant.keys[Role.MARKETER],
        "mutation($input: EnrolInLoyaltyInput!) { enrolInLoyalty(input: $input) { account { enrolledAt } userErrors { code } } }",
        {"input": {"programId": program_id, "customerId": customer}},
    )
    assert enrolled["enrolInLoyalty"]["userErrors"] == []
    await order(gql, tenant, "B", placed=40)
    assert await balance(gql, tenant, customer) == {
        "total": 100,
        "available": 0,
        "pending": 100,
        "earned": 100,
        "spent": 0,
        "expired": 0,
    }
    refused = await adjust(gql, tenant, program_id, customer, -1, "k")
    assert [e["code"] for e in refused["userErrors"]] == ["INSUFFICIENT_POINTS"]


# -- adjustments, idempotency, concurrency ---------------------------------------------------------


async def test_adjustments_need_a_reason_and_replay_by_key(gql: GraphQLClient, tenant: Tenant) -> None:
    program_id = await program(gql, tenant)
    customer = (await order(gql, tenant, "A"))["order"]["customer"]["id"]  # no rules: enrol by hand
    missing = await adjust(gql, tenant, program_id, customer, 0, "", reason=" ")
    assert {(e["field"], e["code"]) for e in missing["userErrors"]} == {
        ("points", "INVALID_POINTS"),
        ("reason", "REASON_REQUIRED"),
        ("idempotencyKey", "INVALID_IDEMPOTENCY_KEY"),
    }
    first = await adjust(gql, tenant, program_id, customer, 50, "welcome-1")
    replay = await adjust(gql, tenant, program_id, customer, 50, "welcome-1")
    assert replay["entry"] == first["entry"]
    reused = await adjust(gql, tenant, program_id, customer, 70, "welcome-1")
    assert [e["code"] for e in reused["userErrors"]] == ["KEY_REUSED"]
    too_much = await adjust(gql, tenant, program_id, customer, -51, "take-1")
    assert [e["code"] for e in too_much["userErrors"]] == ["INSUFFICIENT_POINTS"]
    assert (await balance(gql, tenant, customer))["total"] == 50
    audit = await gql.data(
        tenant.key, '{ auditLog(first: 10, filter: {action: "loyalty.points.adjust"}) { totalCount } }'
    )
    assert audit["auditLog"]["totalCount"] == 1


async def test_concurrent_spending_never_spends_the_same_points(gql: GraphQLClient, tenant: Tenant) -> None:
    program_id = await program(gql, tenant)
    customer = (await order(gql, tenant, "A"))["order"]["customer"]["id"]
    await adjust(gql, tenant, program_id, customer, 100, "grant")
    results = await asyncio.gather(
        *(adjust(gql, tenant, program_id, customer, -10, f"spend-{n}") for n in range(50))
    )
    succeeded = [r for r in results if r["userErrors"] == []]
    assert len(succeeded) == 10
    assert all(
        [e["code"] for e in r["userErrors"]] == ["INSUFFICIENT_POINTS"] for r in results if r not in succeeded
    )
    assert (await balance(gql, tenant, customer))["total"] == 0
    await no_drift(gql, tenant)


# -- expiry ----------------------------------------------------------------------------------------


async def test_expiry_takes_what_is_left_of_each_lot_in_order_and_is_safe_twice(
    engine: AsyncEngine, gql: GraphQLClient, tenant: Tenant
) -> None:
    program_id = await program(gql, tenant, expiryPolicy="MONTHS", expiryPeriod=1)
    await rules(gql, tenant, program_id, pointsPerUnit="1")
    await backdate_rules(engine, tenant, days=10)
    customer = (await order(gql, tenant, "A", placed=-60 * 24 * 9))["order"]["customer"]["id"]
    await order(gql, tenant, "B", placed=-60 * 24 * 6)  # three days later: a later lot
    spent = await adjust(gql, tenant, program_id, customer, -40, "spend")
    assert spent["userErrors"] == []  # taken from the oldest lot: 60 of A's 100 are left
    soon = await gql.data(
        tenant.key,
        "query($id: ID!) { customer(id: $id) { loyalty { a: pointsExpiringSoon(within: 22) b: pointsExpiringSoon } } }",
        {"id": customer},
    )
    assert soon["customer"]["loyalty"] == [{"a": 60, "b": 160}]
    bad = await gql(
        tenant.key,
        "query($id: ID!) { customer(id: $id) { loyalty { pointsExpiringSoon(within: 0) } } }",
        {"id": customer},
    )
    assert bad["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    first_expiry = NOW + timedelta(days=32 - 9)
    async with tenant_transaction(engine, tenant.id) as session:
        assert await ledger.expire_points(session, now=first_expiry) == 1
    async with tenant_transaction(engine, tenant.id) as session:
        assert await ledger.expire_points(session, now=first_expiry) == 0
    assert await balance(gql, tenant, customer) == {
        "total": 100,
        "available": 100,
        "pending": 0,
        "earned": 200,
        "spent": 0,  # an adjustment is not a redemption
        "expired": 60,
    }
    async with tenant_transaction(engine, tenant.id) as session:
        assert await ledger.expire_points(session, now=NOW + timedelta(days=32)) == 1
    assert (await balance(gql, tenant, customer))["total"] == 0
    await no_drift(gql, tenant)


# -- the books -------------------------------------------------------------------------------------


async def test_the_ledger_check_reports_drift(
    engine: AsyncEngine, gql: GraphQLClient, tenant: Tenant
) -> None:
    program_id = await program(gql, tenant)
    customer = (await order(gql, tenant, "A"))["order"]["customer"]["id"]
    await adjust(gql, tenant, program_id, customer, 10, "grant")
    await no_drift(gql, tenant)
    async with platform_transaction(engine) as session:  # the owner, behind the application's back
        await session.execute(
            text("UPDATE loyalty_accounts SET balance = balance + 5 WHERE tenant_id = :t"), {"t": tenant.id}
        )
    check = (await gql.data(tenant.key, CHECK))["loyaltyLedgerCheck"]
    assert check["drifts"] == [
        {"customerId": customer, "cachedBalance": 15, "ledgerBalance": 10, "lotsRemaining": 10}
    ]


@pytest.mark.parametrize("statement", ["UPDATE loyalty_ledger SET delta = 1", "DELETE FROM loyalty_ledger"])
async def test_the_ledger_is_append_only_for_the_application(
    engine: AsyncEngine, tenant: Tenant, statement: str
) -> None:
    with pytest.raises(ProgrammingError, match="permission denied"):
        async with tenant_transaction(engine, tenant.id) as session:
            await session.execute(text(statement))


async def test_another_tenants_program_is_not_found(
    gql: GraphQLClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs = await program(gql, other_tenant)
    customer = (await order(gql, tenant, "A"))["order"]["customer"]["id"]
    data = await gql.data(tenant.key, "query($id: ID!) { loyaltyProgram(id: $id) { name } }", {"id": theirs})
    assert data["loyaltyProgram"] is None
    refused = await adjust(gql, tenant, theirs, customer, 10, "x")
    assert [e["code"] for e in refused["userErrors"]] == ["NOT_FOUND"]


async def test_a_paused_program_earns_nothing_new_but_still_reverses(
    gql: GraphQLClient, tenant: Tenant
) -> None:
    program_id = await program(gql, tenant)
    await rules(gql, tenant, program_id, pointsPerUnit="1")
    customer = (await order(gql, tenant, "A"))["order"]["customer"]["id"]
    update = """mutation($input: UpdateLoyaltyProgramInput!) {
      updateLoyaltyProgram(input: $input) { program { name status } userErrors { field code } } }"""
    paused = await gql.data(
        tenant.key,
        update,
        {"input": {"id": program_id, "name": "Tea Club", "pointsName": "Leaves", "status": "PAUSED"}},
    )
    assert paused["updateLoyaltyProgram"] == {
        "program": {"name": "Tea Club", "status": "PAUSED"},
        "userErrors": [],
    }
    await order(gql, tenant, "B", placed=40)
    assert (await balance(gql, tenant, customer))["total"] == 100
    await order(gql, tenant, "A", status="REFUNDED", refunded=10_000, version=1)
    assert (await balance(gql, tenant, customer))["total"] == 0
    unknown = await gql.data(
        tenant.key,
        update,
        {
            "input": {
                "id": "TG95YWx0eVByb2dyYW06MDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAw",
                "name": "X",
                "pointsName": "P",
            }
        },
    )
    assert unknown["updateLoyaltyProgram"]["userErrors"] == [{"field": "programId", "code": "NOT_FOUND"}]


async def test_a_customer_with_points_history_is_erased_not_deleted(
    gql: GraphQLClient, tenant: Tenant
) -> None:
    program_id = await program(gql, tenant)
    customer = (await order(gql, tenant, "A"))["order"]["customer"]["id"]
    await adjust(gql, tenant, program_id, customer, 10, "grant")
    refused = await gql.data(
        tenant.key,
        "mutation($id: ID!) { deleteCustomer(input: {id: $id}) { deletedId userErrors { field code } } }",
        {"id": customer},
    )
    assert refused["deleteCustomer"] == {
        "deletedId": None,
        "userErrors": [{"field": "id", "code": "HAS_LOYALTY_HISTORY"}],
    }
    assert (await balance(gql, tenant, customer))["total"] == 10


async def test_a_program_that_drops_a_channel_still_reverses_its_orders(
    gql: GraphQLClient, tenant: Tenant
) -> None:
    program_id = await program(gql, tenant, channels=["shopee"])
    await rules(gql, tenant, program_id, pointsPerUnit="1")
    customer = (await order(gql, tenant, "A"))["order"]["customer"]["id"]
    await order(gql, tenant, "T", channel="tiktok", placed=31)  # not a channel of the program
    assert (await balance(gql, tenant, customer))["total"] == 100
    update = """mutation($input: UpdateLoyaltyProgramInput!) { updateLoyaltyProgram(input: $input) { userErrors { code } } }"""
    await gql.data(
        tenant.key,
        update,
        {"input": {"id": program_id, "name": "Tea Club", "pointsName": "Leaves", "channels": ["tiktok"]}},
    )
    await order(gql, tenant, "A", status="REFUNDED", refunded=10_000, version=1)
    assert (await balance(gql, tenant, customer))["total"] == 0
