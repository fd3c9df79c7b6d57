"""Helpers for the loyalty tests: a program with rules, orders placed relative to now, balances."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from brandloop.db.session import platform_transaction
from support import GraphQLClient, Tenant

CREATE_PROGRAM = """
mutation($input: LoyaltyProgramInput!) {
  createLoyaltyProgram(input: $input) { program { id name status } userErrors { field code message } }
}"""
SET_RULES = """
mutation($input: SetLoyaltyRulesInput!) {
  setLoyaltyRules(input: $input) { ruleVersion { version effectiveFrom } userErrors { field code message } }
}"""
RECORD = """
mutation($input: RecordOrderInput!) {
  recordOrder(input: $input) { outcome order { customer { id } } userErrors { field code message } }
}"""
LOYALTY = """
query($id: ID!) { customer(id: $id) { loyalty {
  program { name }
  balance { total available pending earned spent expired }
  ledger(first: 100) { totalCount edges { node { points kind source ruleVersion reason } } }
} } }"""
ADJUST = """
mutation($input: AdjustPointsInput!) {
  adjustPoints(input: $input) { entry { id points kind } userErrors { field code message } }
}"""
CHECK = "{ loyaltyLedgerCheck { accountsChecked drifts { customerId cachedBalance ledgerBalance lotsRemaining } } }"

NOW = datetime.now(UTC)
BUYER = {"email": "mei@tealover.cn", "name": "Mei"}


def at(minutes: float) -> str:
    return (NOW + timedelta(minutes=minutes)).isoformat()


async def program(gql: GraphQLClient, tenant: Tenant, **settings: Any) -> str:
    data = await gql.data(
        tenant.key, CREATE_PROGRAM, {"input": {"name": "Tea Club", "pointsName": "Leaves", **settings}}
    )
    payload = data["createLoyaltyProgram"]
    assert payload["userErrors"] == []
    return str(payload["program"]["id"])


async def rules(
    gql: GraphQLClient, tenant: Tenant, program_id: str, effective_from: str | None = None, **given: Any
) -> dict[str, Any]:
    data = await gql.data(
        tenant.key,
        SET_RULES,
        {"input": {"programId": program_id, "effectiveFrom": effective_from, "rules": given}},
    )
    return dict(data["setLoyaltyRules"])


async def order(
    gql: GraphQLClient,
    tenant: Tenant,
    external_id: str,
    *,
    placed: float = 30,
    total: int = 10_000,
    refunded: int = 0,
    status: str = "PAID",
    channel: str = "shopee",
    lines: list[dict[str, Any]] | None = None,
    version: float = 0,
    buyer: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Record an order placed `placed` minutes from now; `version` orders its updates."""
    data = await gql.data(
        tenant.key,
        RECORD,
        {
            "input": {
                "channel": channel,
                "externalId": external_id,
                "status": status,
                "currency": "CNY",
                "total": total,
                "refunded": refunded,
                "placedAt": at(placed),
                "updatedAt": at(placed + version),
                "lines": lines or [{"sku": "S", "productName": "Tea", "quantity": 1, "unitPrice": total}],
                "buyer": buyer or BUYER,
            }
        },
    )
    payload = data["recordOrder"]
    assert payload["userErrors"] == [] and payload["order"]["customer"], payload
    return dict(payload)


async def account(gql: GraphQLClient, tenant: Tenant, customer_id: str) -> dict[str, Any]:
    data = await gql.data(tenant.key, LOYALTY, {"id": customer_id})
    accounts = data["customer"]["loyalty"]
    assert len(accounts) == 1
    return dict(accounts[0])


async def balance(gql: GraphQLClient, tenant: Tenant, customer_id: str) -> dict[str, int]:
    return dict((await account(gql, tenant, customer_id))["balance"])


async def backdate_rules(engine: AsyncEngine, tenant: Tenant, days: int) -> None:
    """Let time pass: the tenant's rules were saved `days` earlier (the API never back-dates rules)."""
    async with platform_transaction(engine) as session:
        await session.execute(
            text(
                "UPDATE loyalty_rule_versions SET effective_from = effective_from - make_interval(days => :d) WHERE tenant_id = :t"
            ),
            {"d": days, "t": tenant.id},
        )


async def no_drift(gql: GraphQLClient, tenant: Tenant) -> None:
    check = (await gql.data(tenant.key, CHECK))["loyaltyLedgerCheck"]
    assert check["accountsChecked"] > 0
    assert check["drifts"] == []


async def adjust(
    gql: GraphQLClient,
    tenant: Tenant,
    program_id: str,
    customer: str,
    points: int,
    key: str,
    reason: str = "goodwill",
) -> dict[str, Any]:
    data = await gql.data(
        tenant.key,
        ADJUST,
        {
            "input": {
                "programId": program_id,
                "customerId": customer,
                "points": points,
                "reason": reason,
                "idempotencyKey": key,
            }
        },
    )
    return dict(data["adjustPoints"])
