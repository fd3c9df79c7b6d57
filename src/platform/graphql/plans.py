"""The planned hot reads: customers, orders and what hangs off them (see planner.py).

Each plan writes a field exactly as its strawberry type would; tests/graphql/test_planner.py runs
a corpus of operations planned and unplanned and compares the answers. Lists and connections
use the services' own query builders, so filters and paging mean the same on both paths.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from graphql import FieldNode, GraphQLObjectType
from sqlalchemy import ColumnElement, Select, Text, case, func, literal, select
from sqlalchemy.dialects.postgresql import aggregate_order_by

from brandloop.auth.permissions import Permission
from brandloop.customers import service as customers
from brandloop.customers.graphql import CustomerFilterInput
from brandloop.customers.models import Customer, CustomerIdentity, CustomerTag, Tag
from brandloop.db.base import keyset_page
from brandloop.graphql.planner import (
    ObjectPlan,
    RootPlan,
    Row,
    Scope,
    Unplannable,
    column,
    computed,
    connection,
    enum_name,
    global_id,
    iso_time,
    json_list,
    needs,
    nested,
)
from brandloop.graphql.relay import pk_of
from brandloop.loyalty import ledger
from brandloop.loyalty.models import Account, LedgerEntry, Program
from brandloop.nps.models import Response, Survey
from brandloop.nps.service import DETRACTOR_MAX, PROMOTER_MIN
from brandloop.orders import service as orders
from brandloop.orders.graphql import OrderFilterInput
from brandloop.orders.models import Order, OrderLine


def _columns(model: Any) -> Row:
    return {c.key: c for c in model.__table__.c}


def _time(name: str) -> Any:
    return computed(lambda row: iso_time(row[name]))


def _money(amount: str) -> Any:
    return nested(lambda: MONEY, lambda row: {"amount": row[amount], "currency": row["currency"]})


MONEY = ObjectPlan("Money", {"amount": column("amount"), "currency": column("currency")})

TAG = ObjectPlan(
    "Tag",
    {
        "id": computed(lambda row: global_id("Tag", row["id"])),
        "name": column("name"),
        "kind": computed(lambda row: enum_name(row["kind"])),
    },
)

IDENTITY = ObjectPlan(
    "CustomerIdentity",
    {
        "kind": computed(lambda row: enum_name(row["kind"])),
        "value": column("value"),
        "source": column("source"),
        "createdAt": _time("created_at"),
    },
)

ORDER_LINE = ObjectPlan(
    "OrderLine",
    {
        "lineNo": column("line_no"),
        "sku": column("sku"),
        "productName": column("product_name"),
        "category": column("category"),
        "quantity": column("quantity"),
        "unitPrice": _money("unit_price"),
        "lineTotal": nested(
            lambda: MONEY,
            lambda row: {"amount": row["unit_price"] * row["quantity"], "currency": row["currency"]},
        ),
    },
)


def _tags(scope: Scope, parent: GraphQLObjectType, node: FieldNode, row: Row) -> ColumnElement[Any]:
    tags = _columns(Tag)
    return json_list(
        select(func.json_agg(aggregate_order_by(TAG.json(scope, node.selection_set, tags), tags["name"])))
        .select_from(CustomerTag.__table__.join(Tag.__table__, CustomerTag.tag_id == Tag.id))
        .where(CustomerTag.customer_id == row["id"])
        .correlate(row["id"].table)
    )


def _identities(scope: Scope, parent: GraphQLObjectType, node: FieldNode, row: Row) -> ColumnElement[Any]:
    identities = _columns(CustomerIdentity)
    ordering = (identities["kind"], identities["value"])
    return json_list(
        select(
            func.json_agg(aggregate_order_by(IDENTITY.json(scope, node.selection_set, identities), *ordering))
        )
        .where(identities["customer_id"] == row["id"])
        .correlate(row["id"].table)
    )


def _customer_orders(
    scope: Scope, parent: GraphQLObjectType, node: FieldNode, row: Row
) -> ColumnElement[Any]:
    def page(first: int, after: uuid.UUID | None) -> Select[Any]:
        # Correlated to the customer's row, which is two SELECTs out: say so explicitly.
        query = select(Order).where(Order.customer_id == row["id"]).correlate(row["id"].table)
        return keyset_page(query, Order, first, after)

    return connection(
        scope,
        parent,
        node,
        type_name="OrderConnection",
        node_plan=ORDER,
        page=page,
        count=lambda: (
            select(func.count())
            .select_from(Order)
            .where(Order.customer_id == row["id"])
            .correlate(row["id"].table)
        ),
    )


def _lines(scope: Scope, parent: GraphQLObjectType, node: FieldNode, row: Row) -> ColumnElement[Any]:
    lines = {**_columns(OrderLine), "currency": row["currency"]}
    return json_list(
        select(
            func.json_agg(
                aggregate_order_by(ORDER_LINE.json(scope, node.selection_set, lines), lines["line_no"])
            )
        )
        .where(lines["order_id"] == row["id"])
        .correlate(row["id"].table)
    )


def _order_customer(scope: Scope, parent: GraphQLObjectType, node: FieldNode, row: Row) -> ColumnElement[Any]:
    people = _columns(Customer)
    return (
        select(CUSTOMER.json(scope, node.selection_set, people))
        .where(people["id"] == row["customer_id"])
        .correlate(row["customer_id"].table)
        .scalar_subquery()
    )


LEDGER_ENTRY = ObjectPlan(
    "LoyaltyLedgerEntry",
    {
        "id": computed(lambda row: global_id("LoyaltyLedgerEntry", row["id"])),
        "points": column("delta"),
        "kind": computed(lambda row: enum_name(row["kind"])),
        "source": computed(lambda row: enum_name(row["source"])),
        "sourceId": column("source_id"),
        "effectiveAt": _time("effective_at"),
        "expiresAt": _time("expires_at"),
        "ruleVersion": column("rule_version"),
        "reason": column("reason"),
        "actor": column("actor"),
        "recordedAt": _time("created_at"),
    },
)

LOYALTY_PROGRAM = ObjectPlan(
    "LoyaltyProgram",
    {
        "id": computed(lambda row: global_id("LoyaltyProgram", row["id"])),
        "name": column("name"),
        "pointsName": column("points_name"),
        "status": computed(lambda row: enum_name(row["status"])),
        "channels": computed(lambda row: func.to_json(row["channels"])),
        "enrolment": computed(lambda row: enum_name(row["enrolment"])),
        "expiryPolicy": computed(lambda row: enum_name(row["expiry_policy"])),
        "expiryPeriod": column("expiry_period"),
        "pendingDays": column("pending_days"),
        # strawberry writes a Decimal as its text, which for numeric(18, 6) is PostgreSQL's text.
        "pointCost": computed(lambda row: row["point_cost"].cast(Text)),
        "tierWindowDays": column("tier_window_days"),
        "tierReviewMonths": column("tier_review_months"),
        "createdAt": _time("created_at"),
    },
)


def _account_program(
    scope: Scope, parent: GraphQLObjectType, node: FieldNode, row: Row
) -> ColumnElement[Any]:
    programs = _columns(Program)
    return (
        select(LOYALTY_PROGRAM.json(scope, node.selection_set, programs))
        .where(programs["id"] == row["program_id"])
        .correlate(row["program_id"].table)
        .scalar_subquery()
    )


def _balance(scope: Scope, parent: GraphQLObjectType, node: FieldNode, row: Row) -> ColumnElement[Any]:
    values = ledger.balance_columns(row["id"], row["balance"])
    balance_type = scope.schema.get_type("LoyaltyBalance")
    assert isinstance(balance_type, GraphQLObjectType)
    pairs: list[Any] = []
    for key, field_node in scope.selections(balance_type, node.selection_set):
        name = field_node.name.value
        if name not in values:
            raise Unplannable(f"LoyaltyBalance.{name}")
        pairs += [literal(key), values[name]]
    return func.json_build_object(*pairs)


def _ledger(scope: Scope, parent: GraphQLObjectType, node: FieldNode, row: Row) -> ColumnElement[Any]:
    def page(first: int, after: uuid.UUID | None) -> Select[Any]:
        query = select(LedgerEntry).where(LedgerEntry.account_id == row["id"]).correlate(row["id"].table)
        return keyset_page(query, LedgerEntry, first, after)

    return connection(
        scope,
        parent,
        node,
        type_name="LoyaltyLedgerEntryConnection",
        node_plan=LEDGER_ENTRY,
        page=page,
        count=lambda: (
            select(func.count())
            .select_from(LedgerEntry)
            .where(LedgerEntry.account_id == row["id"])
            .correlate(row["id"].table)
        ),
    )


ACCOUNT = ObjectPlan(
    "LoyaltyAccount",
    {
        "enrolledAt": _time("enrolled_at"),
        "tierReviewAt": _time("tier_review_at"),
        "program": _account_program,
        "balance": _balance,
        "ledger": _ledger,
    },
)


def _loyalty(scope: Scope, parent: GraphQLObjectType, node: FieldNode, row: Row) -> ColumnElement[Any]:
    accounts = _columns(Account)
    return json_list(
        select(
            func.json_agg(
                aggregate_order_by(ACCOUNT.json(scope, node.selection_set, accounts), accounts["program_id"])
            )
        )
        .where(accounts["customer_id"] == row["id"])
        .correlate(row["id"].table)
    )


CUSTOMER = ObjectPlan(
    "Customer",
    {
        "id": computed(lambda row: global_id("Customer", row["id"])),
        "displayName": column("display_name"),
        "email": column("email"),
        "phone": column("phone"),
        "lifecycleStage": computed(lambda row: enum_name(row["lifecycle_stage"])),
        "valueTier": computed(lambda row: enum_name(row["value_tier"])),
        "createdAt": _time("created_at"),
        "updatedAt": _time("updated_at"),
        "erasedAt": _time("erased_at"),
        "firstOrderAt": _time("first_order_at"),
        "lastOrderAt": _time("last_order_at"),
        "tags": _tags,
        "identities": _identities,
        "orders": _customer_orders,
        "loyalty": needs(Permission.LOYALTY_READ, _loyalty),
    },
)

ORDER = ObjectPlan(
    "Order",
    {
        "id": computed(lambda row: global_id("Order", row["id"])),
        "channel": column("channel"),
        "externalId": column("external_id"),
        "status": computed(lambda row: enum_name(row["status"])),
        "placedAt": _time("placed_at"),
        "updatedAt": _time("source_updated_at"),
        "recordedAt": _time("created_at"),
        "subtotal": _money("subtotal"),
        "discount": _money("discount"),
        "shipping": _money("shipping"),
        "tax": _money("tax"),
        "total": _money("total"),
        "refunded": _money("refunded"),
        "shipRegion": column("ship_region"),
        "sellerId": column("seller_id"),
        "lines": _lines,
        "customer": _order_customer,
    },
)


SURVEY_RESPONSE = ObjectPlan(
    "SurveyResponse",
    {
        "id": computed(lambda row: global_id("SurveyResponse", row["id"])),
        "score": column("score"),
        "category": computed(
            lambda row: case(
                (row["score"] >= PROMOTER_MIN, literal("PROMOTER")),
                (row["score"] <= DETRACTOR_MAX, literal("DETRACTOR")),
                else_=literal("PASSIVE"),
            )
        ),
        "comment": column("comment"),
        "answers": column("answers"),
        "channel": column("channel"),
        "createdAt": _time("created_at"),
        "customer": _order_customer,
    },
)


def _survey_responses(
    scope: Scope, parent: GraphQLObjectType, node: FieldNode, row: Row
) -> ColumnElement[Any]:
    def page(first: int, after: uuid.UUID | None) -> Select[Any]:
        query = select(Response).where(Response.survey_id == row["id"]).correlate(row["id"].table)
        return keyset_page(query, Response, first, after)

    return connection(
        scope,
        parent,
        node,
        type_name="SurveyResponseConnection",
        node_plan=SURVEY_RESPONSE,
        page=page,
        count=lambda: (
            select(func.count())
            .select_from(Response)
            .where(Response.survey_id == row["id"])
            .correlate(row["id"].table)
        ),
    )


SURVEY = ObjectPlan(
    "Survey",
    {
        "id": computed(lambda row: global_id("Survey", row["id"])),
        "name": column("name"),
        "status": computed(lambda row: enum_name(row["status"])),
        "channels": computed(lambda row: func.to_json(row["channels"])),
        "trigger": computed(lambda row: enum_name(row["trigger"])),
        "linkDays": column("link_days"),
        "createdAt": _time("created_at"),
        "responses": _survey_responses,
    },
)


def _one(plan: ObjectPlan, model: Any, type_name: str) -> Any:
    def build(scope: Scope, parent: GraphQLObjectType, node: FieldNode) -> ColumnElement[Any]:
        rows = _columns(model)
        pk = pk_of(scope.argument(node, parent, "id"), type_name)
        return select(plan.json(scope, node.selection_set, rows)).where(rows["id"] == pk).scalar_subquery()

    return build


def _listing(
    filter_input: Any,
    default_filter: Any,
    type_name: str,
    node_plan: ObjectPlan,
    page: Callable[[Any, int, uuid.UUID | None], Select[Any]],
    count: Callable[[Any], Select[Any]],
) -> Any:
    """A root connection with a `filter` argument, paged and counted by its service's builders."""

    def build(scope: Scope, parent: GraphQLObjectType, node: FieldNode) -> ColumnElement[Any]:
        given = scope.input(node, parent, "filter", filter_input)
        flt = given.to_filter() if given else default_filter
        return connection(
            scope,
            parent,
            node,
            type_name=type_name,
            node_plan=node_plan,
            page=lambda first, after: page(flt, first, after),
            count=lambda: count(flt),
        )

    return build


ROOTS = {
    "customers": RootPlan(
        Permission.CUSTOMERS_READ,
        _listing(
            CustomerFilterInput,
            customers.CustomerFilter(),
            "CustomerConnection",
            CUSTOMER,
            customers.customers_page,
            customers.customers_count,
        ),
    ),
    "customer": RootPlan(Permission.CUSTOMERS_READ, _one(CUSTOMER, Customer, "Customer"), by_id=True),
    "orders": RootPlan(
        Permission.ORDERS_READ,
        _listing(
            OrderFilterInput,
            orders.OrderFilter(),
            "OrderConnection",
            ORDER,
            orders.orders_page,
            orders.orders_count,
        ),
    ),
    "order": RootPlan(Permission.ORDERS_READ, _one(ORDER, Order, "Order"), by_id=True),
    "survey": RootPlan(Permission.SURVEYS_READ, _one(SURVEY, Survey, "Survey"), by_id=True),
}
