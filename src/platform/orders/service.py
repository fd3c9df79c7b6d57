"""Order rules: validation, idempotent ingest in batches, reads, and reporting-currency amounts.

Ingest is one path for every source (the recordOrder mutation, `brandloop import orders`, and
the connectors later): validate each order in Python, resolve its buyer, then upsert the whole
batch with one statement per table. The unique key (tenant, channel, external id) makes a
re-delivery an update, and an update older than what is stored changes nothing.
"""

from __future__ import annotations

import enum
import re
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, NamedTuple, Protocol

from babel.numbers import get_currency_precision
from sqlalchemy import Select, and_, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from brandloop.audit import service as audit
from brandloop.customers import merges
from brandloop.customers.identities import CHANNEL_BUYER_KIND, Identity, IdentityKind, normalise
from brandloop.customers.resolution import Buyer, resolve_buyers
from brandloop.db.base import keyset_page, uuid7
from brandloop.db.session import current_tenant
from brandloop.errors import InvalidInput, Problem
from brandloop.orders.models import ExchangeRate, Order, OrderLine
from brandloop.tenancy.service import is_currency, settings_of

CHANNEL = re.compile(r"^[a-z][a-z0-9_]{1,31}$")
REGION = re.compile(r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$")
"""ISO 3166-2 (CN-GD, US-CA) or a whole country (ISO 3166-1 alpha-2)."""
MAX_EXTERNAL_ID = 128
MAX_LINES = 500
MAX_SKU = 64
MAX_PRODUCT_NAME = 300
MAX_CATEGORY = 100
MAX_AMOUNT = 10**15  # minor units; far above any real order, far below bigint


class OrderStatus(enum.StrEnum):
    PENDING = "pending"
    PAID = "paid"
    SHIPPED = "shipped"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"
    PARTIALLY_REFUNDED = "partially_refunded"


STATUSES = frozenset(s.value for s in OrderStatus)
PAID_STATUSES = frozenset({"paid", "shipped", "completed", "partially_refunded"})
"""Statuses of orders the customer paid for (and has not had wholly refunded): what counts as
spend for segments, earns loyalty points and qualifies for tiers."""


class Outcome(enum.StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    """Already stored at this or a newer version."""


class LineInput(NamedTuple):
    sku: str
    product_name: str
    quantity: int
    unit_price: int
    category: str | None = None


class BuyerInput(NamedTuple):
    """Who bought, as the channel tells it; `buyer_id` is the channel's own id for the buyer."""

    name: str | None = None
    email: str | None = None
    phone: str | None = None
    buyer_id: str | None = None
    wechat_unionid: str | None = None
    wechat_openid: str | None = None


# Plain tuples: the importer ships them between processes, and tuples pickle many times faster.
class OrderInput(NamedTuple):
    channel: str
    external_id: str
    status: str
    currency: str
    total: int
    placed_at: datetime
    lines: Sequence[LineInput] = ()
    subtotal: int | None = None
    discount: int = 0
    shipping: int = 0
    tax: int = 0
    refunded: int = 0
    updated_at: datetime | None = None
    """The channel's last-modified time; an older one never overwrites a newer one."""
    buyer: BuyerInput | None = None
    ship_region: str | None = None
    """Where it shipped: ISO 3166-2 (CN-GD) or a country (CN)."""
    seller_id: str | None = None
    """The channel's id of the store that sold it."""


class ValidOrder(NamedTuple):
    order: OrderInput
    buyer: Buyer | None


@dataclass(slots=True)
class IngestResult:
    outcomes: list[tuple[Outcome, uuid.UUID | None]] = field(default_factory=list)
    """Per input order, in input order: what happened and the stored order's id."""


# -- validation --------------------------------------------------------------------------------


def validate(order: OrderInput) -> ValidOrder:
    """The order as it will be stored, or InvalidInput listing everything wrong with it."""
    problems: list[Problem] = []

    def check(ok: bool, field_name: str, code: str, message: str) -> None:
        if not ok:
            problems.append(Problem(field_name, code, message))

    channel = order.channel.strip().lower()
    check(
        bool(CHANNEL.match(channel)),
        "channel",
        "INVALID_CHANNEL",
        "A channel is a short lower-case name like shopee.",
    )
    external_id = order.external_id.strip()
    check(
        0 < len(external_id) <= MAX_EXTERNAL_ID,
        "externalId",
        "INVALID_LENGTH",
        f"The channel's order id has 1 to {MAX_EXTERNAL_ID} characters.",
    )
    status = order.status.strip().lower()
    check(
        status in STATUSES,
        "status",
        "INVALID_STATUS",
        f"Use one of: {', '.join(s.value for s in OrderStatus)}.",
    )
    currency = order.currency.strip().upper()
    check(is_currency(currency), "currency", "INVALID_CURRENCY", "Use an ISO 4217 code such as CNY or USD.")
    amounts = {
        "total": order.total,
        "discount": order.discount,
        "shipping": order.shipping,
        "tax": order.tax,
        "refunded": order.refunded,
    }
    for name, amount in amounts.items():
        check(0 <= amount <= MAX_AMOUNT, name, "INVALID_AMOUNT", "Amounts are whole minor units, 0 or more.")
    check(order.refunded <= order.total, "refunded", "INVALID_AMOUNT", "Cannot refund more than the total.")
    for name, moment in (("placedAt", order.placed_at), ("updatedAt", order.updated_at)):
        check(
            moment is None or moment.tzinfo is not None,
            name,
            "MISSING_TIMEZONE",
            "Give times with a UTC offset, e.g. 2026-11-27T10:00:00+08:00.",
        )
    check(len(order.lines) <= MAX_LINES, "lines", "INVALID_COUNT", f"An order has at most {MAX_LINES} lines.")
    lines = []
    for n, line in enumerate(order.lines[:MAX_LINES], start=1):
        where = f"lines.{n}"
        sku, name = line.sku.strip(), " ".join(line.product_name.split())
        category = " ".join((line.category or "").split()) or None
        check(
            0 < len(sku) <= MAX_SKU, f"{where}.sku", "INVALID_LENGTH", f"A SKU has 1 to {MAX_SKU} characters."
        )
        check(
            0 < len(name) <= MAX_PRODUCT_NAME,
            f"{where}.productName",
            "INVALID_LENGTH",
            f"A product name has 1 to {MAX_PRODUCT_NAME} characters.",
        )
        check(
            category is None or len(category) <= MAX_CATEGORY,
            f"{where}.category",
            "INVALID_LENGTH",
            f"A category has at most {MAX_CATEGORY} characters.",
        )
        check(
            0 < line.quantity <= 1_000_000, f"{where}.quantity", "INVALID_QUANTITY", "Quantity is 1 or more."
        )
        check(
            0 <= line.unit_price <= MAX_AMOUNT,
            f"{where}.unitPrice",
            "INVALID_AMOUNT",
            "Prices are 0 or more.",
        )
        lines.append(LineInput(sku, name, line.quantity, line.unit_price, category))
    ship_region = order.ship_region.strip().upper() if order.ship_region else None
    check(
        ship_region is None or bool(REGION.match(ship_region)),
        "shipRegion",
        "INVALID_REGION",
        "Use an ISO 3166-2 code such as CN-GD, or a country such as CN.",
    )
    seller_id = order.seller_id.strip() if order.seller_id and order.seller_id.strip() else None
    check(seller_id is None or len(seller_id) <= 128, "sellerId", "INVALID_LENGTH", "At most 128 characters.")
    subtotal = order.subtotal if order.subtotal is not None else sum(x.quantity * x.unit_price for x in lines)
    check(
        0 <= subtotal <= MAX_AMOUNT, "subtotal", "INVALID_AMOUNT", "Amounts are whole minor units, 0 or more."
    )
    buyer = None
    if order.buyer is not None:
        try:
            buyer = buyer_of(channel, order.buyer)
        except InvalidInput as error:
            problems.extend(error.problems)
    if problems:
        raise InvalidInput(*problems)
    valid = order._replace(
        channel=channel,
        external_id=external_id,
        status=status,
        currency=currency,
        subtotal=subtotal,
        lines=tuple(lines),
        updated_at=order.updated_at or order.placed_at,
        ship_region=ship_region,
        seller_id=seller_id,
    )
    return ValidOrder(valid, buyer)


def buyer_of(channel: str, buyer: BuyerInput) -> Buyer:
    """The identities a channel gives for someone, normalised; InvalidInput names what is not valid."""
    raw: list[tuple[IdentityKind, str | None, str]] = [
        (IdentityKind.WECHAT_UNIONID, buyer.wechat_unionid, "buyer.wechatUnionid"),
        (IdentityKind.WECHAT_OPENID, buyer.wechat_openid, "buyer.wechatOpenid"),
        (IdentityKind.EMAIL, buyer.email, "buyer.email"),
        (IdentityKind.PHONE, buyer.phone, "buyer.phone"),
    ]
    if buyer.buyer_id:
        buyer_kind = CHANNEL_BUYER_KIND.get(channel, IdentityKind.EXTERNAL)
        buyer_id = buyer.buyer_id.strip()
        raw.append(
            (
                buyer_kind,
                buyer_id if buyer_kind is not IdentityKind.EXTERNAL else f"{channel}:{buyer_id}",
                "buyer.buyerId",
            )
        )
    identities: list[Identity] = []
    problems: list[Problem] = []
    for kind, value, field_name in raw:
        if value and value.strip():
            try:
                identities.append(normalise(kind, value, field_name))
            except InvalidInput as error:
                problems.extend(error.problems)
    if problems:
        raise InvalidInput(*problems)
    return Buyer(source=channel, name=buyer.name, identities=tuple(identities))


# -- ingest ------------------------------------------------------------------------------------


class OrderListener(Protocol):
    """A domain that acts on stored orders (loyalty accrual), in the same transaction."""

    async def __call__(self, session: AsyncSession, order_ids: Sequence[uuid.UUID]) -> None: ...


_listeners: list[OrderListener] = []


def on_orders_changed(listener: OrderListener) -> None:
    """Call `listener` with the ids of the orders each ingest created or changed."""
    _listeners.append(listener)


_UPSERT_ORDERS = text(
    """
    INSERT INTO orders AS o (tenant_id, id, channel, external_id, customer_id, status, currency,
                             subtotal, discount, shipping, tax, total, refunded, placed_at, source_updated_at,
                             ship_region, seller_id)
    SELECT :tenant, * FROM unnest(
        CAST(:ids AS uuid[]), CAST(:channels AS text[]), CAST(:external_ids AS text[]),
        CAST(:customers AS uuid[]), CAST(:statuses AS text[]), CAST(:currencies AS text[]),
        CAST(:subtotals AS bigint[]), CAST(:discounts AS bigint[]), CAST(:shippings AS bigint[]),
        CAST(:taxes AS bigint[]), CAST(:totals AS bigint[]), CAST(:refunds AS bigint[]),
        CAST(:placed AS timestamptz[]), CAST(:updated AS timestamptz[]), CAST(:regions AS text[]),
        CAST(:sellers AS text[]))
    ON CONFLICT (tenant_id, channel, external_id) DO UPDATE SET
        customer_id = coalesce(excluded.customer_id, o.customer_id),
        status = excluded.status, currency = excluded.currency, subtotal = excluded.subtotal,
        discount = excluded.discount, shipping = excluded.shipping, tax = excluded.tax,
        total = excluded.total, refunded = excluded.refunded, placed_at = excluded.placed_at,
        source_updated_at = excluded.source_updated_at, ship_region = excluded.ship_region,
        seller_id = excluded.seller_id, updated_at = now()
      WHERE o.source_updated_at < excluded.source_updated_at
    RETURNING o.id, o.channel, o.external_id, (o.xmax = 0) AS inserted
    """
)
_CLEAR_LINES = text("DELETE FROM order_lines WHERE order_id = ANY(:ids)")
_INSERT_LINES = text(
    """
    INSERT INTO order_lines (tenant_id, order_id, line_no, sku, product_name, category, quantity, unit_price)
    SELECT :tenant, * FROM unnest(
        CAST(:orders AS uuid[]), CAST(:numbers AS smallint[]), CAST(:skus AS text[]),
        CAST(:names AS text[]), CAST(:categories AS text[]), CAST(:quantities AS int[]),
        CAST(:prices AS bigint[]))
    """
)
_STORED_IDS = text(
    """
    SELECT o.id, o.channel, o.external_id FROM orders o
      JOIN unnest(CAST(:channels AS text[]), CAST(:external_ids AS text[])) AS k(channel, external_id)
        ON o.channel = k.channel AND o.external_id = k.external_id
    """
)


async def ingest(session: AsyncSession, orders: Sequence[ValidOrder]) -> IngestResult:
    """Store validated orders: created, updated when newer, unchanged otherwise."""
    if not orders:
        return IngestResult()
    tenant_id = current_tenant(session)
    # Within one batch the same order may come twice: the newest version is the one to store.
    newest: dict[tuple[str, str], ValidOrder] = {}
    for valid in orders:
        key = (valid.order.channel, valid.order.external_id)
        kept = newest.get(key)
        if kept is None or _version(valid) >= _version(kept):
            newest[key] = valid
    batch = list(newest.values())
    customers = await resolve_buyers(session, [v.buyer for v in batch])
    o = [v.order for v in batch]
    written = await session.execute(
        _UPSERT_ORDERS,
        {
            "tenant": tenant_id,
            "ids": [uuid7() for _ in o],
            "channels": [x.channel for x in o],
            "external_ids": [x.external_id for x in o],
            "customers": customers,
            "statuses": [x.status for x in o],
            "currencies": [x.currency for x in o],
            "subtotals": [x.subtotal for x in o],
            "discounts": [x.discount for x in o],
            "shippings": [x.shipping for x in o],
            "taxes": [x.tax for x in o],
            "totals": [x.total for x in o],
            "refunds": [x.refunded for x in o],
            "placed": [x.placed_at for x in o],
            "updated": [x.updated_at for x in o],
            "regions": [x.ship_region for x in o],
            "sellers": [x.seller_id for x in o],
        },
    )
    stored: dict[tuple[str, str], tuple[Outcome, uuid.UUID]] = {
        (channel, external_id): (Outcome.CREATED if inserted else Outcome.UPDATED, order_id)
        for order_id, channel, external_id, inserted in written
    }
    changed = {key: order_id for key, (_, order_id) in stored.items()}
    updated_ids = [order_id for outcome, order_id in stored.values() if outcome is Outcome.UPDATED]
    if updated_ids:
        await session.execute(_CLEAR_LINES, {"ids": updated_ids})
    lines = [
        (changed[(x.channel, x.external_id)], n, line)
        for x in o
        if (x.channel, x.external_id) in changed
        for n, line in enumerate(x.lines, start=1)
    ]
    if lines:
        await session.execute(
            _INSERT_LINES,
            {
                "tenant": tenant_id,
                "orders": [order_id for order_id, _, _ in lines],
                "numbers": [n for _, n, _ in lines],
                "skus": [line.sku for _, _, line in lines],
                "names": [line.product_name for _, _, line in lines],
                "categories": [line.category for _, _, line in lines],
                "quantities": [line.quantity for _, _, line in lines],
                "prices": [line.unit_price for _, _, line in lines],
            },
        )
    for listener in _listeners:
        await listener(session, list(changed.values()))
    unchanged = [key for key in newest if key not in stored]
    if unchanged:
        rows = await session.execute(
            _STORED_IDS, {"channels": [k[0] for k in unchanged], "external_ids": [k[1] for k in unchanged]}
        )
        for order_id, channel, external_id in rows:
            stored[(channel, external_id)] = (Outcome.UNCHANGED, order_id)
    result = IngestResult()
    seen: set[tuple[str, str]] = set()
    for valid in orders:
        key = (valid.order.channel, valid.order.external_id)
        outcome, order_id = stored[key]
        # A repeat inside the batch reports as unchanged: it was stored once.
        result.outcomes.append((outcome if key not in seen else Outcome.UNCHANGED, order_id))
        seen.add(key)
    return result


def _version(valid: ValidOrder) -> datetime:
    assert valid.order.updated_at is not None
    return valid.order.updated_at


# -- reads -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderFilter:
    channel: str | None = None
    status: OrderStatus | None = None
    placed_after: datetime | None = None
    placed_before: datetime | None = None
    customer_id: uuid.UUID | None = None


def _filtered(query: Select[Any], flt: OrderFilter) -> Select[Any]:
    conditions = []
    if flt.channel is not None:
        conditions.append(Order.channel == flt.channel.strip().lower())
    if flt.status is not None:
        conditions.append(Order.status == flt.status.value)
    if flt.placed_after is not None:
        conditions.append(Order.placed_at >= flt.placed_after)
    if flt.placed_before is not None:
        conditions.append(Order.placed_at < flt.placed_before)
    if flt.customer_id is not None:
        conditions.append(Order.customer_id == flt.customer_id)
    return query.where(and_(*conditions)) if conditions else query


def orders_page(flt: OrderFilter, first: int, after: uuid.UUID | None) -> Select[tuple[Order]]:
    """Up to `first` orders after the cursor, oldest first."""
    return keyset_page(_filtered(select(Order), flt), Order, first, after)


def orders_count(flt: OrderFilter) -> Select[tuple[int]]:
    return _filtered(select(func.count()).select_from(Order), flt)


async def list_orders(
    session: AsyncSession, flt: OrderFilter, *, first: int, after: uuid.UUID | None = None
) -> list[Order]:
    return list((await session.scalars(orders_page(flt, first, after))).all())


async def count_orders(session: AsyncSession, flt: OrderFilter) -> int:
    return await session.scalar(orders_count(flt)) or 0


async def get_orders(session: AsyncSession, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Order]:
    return {o.id: o for o in await session.scalars(select(Order).where(Order.id.in_(ids)))}


async def lines_of(session: AsyncSession, order_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[OrderLine]]:
    rows = await session.scalars(
        select(OrderLine)
        .where(OrderLine.order_id.in_(order_ids))
        .order_by(OrderLine.order_id, OrderLine.line_no)
    )
    found: dict[uuid.UUID, list[OrderLine]] = defaultdict(list)
    for line in rows:
        found[line.order_id].append(line)
    return found


async def orders_of_customers(
    session: AsyncSession, customer_ids: Sequence[uuid.UUID], *, first: int, after: uuid.UUID | None
) -> dict[uuid.UUID, list[Order]]:
    """The first `first` orders after `after` of each customer, in one query."""
    ranked = select(
        Order, func.row_number().over(partition_by=Order.customer_id, order_by=Order.id).label("rank")
    ).where(Order.customer_id.in_(customer_ids))
    if after is not None:
        ranked = ranked.where(Order.id > after)
    sub = ranked.subquery()
    order = aliased(Order, sub)
    rows = await session.scalars(
        select(order).where(sub.c.rank <= first).order_by(sub.c.customer_id, sub.c.id)
    )
    found: dict[uuid.UUID, list[Order]] = defaultdict(list)
    for row in rows:
        assert row.customer_id is not None
        found[row.customer_id].append(row)
    return found


async def order_counts(session: AsyncSession, customer_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
    rows = await session.execute(
        select(Order.customer_id, func.count())
        .where(Order.customer_id.in_(customer_ids))
        .group_by(Order.customer_id)
    )
    return {customer_id: count for customer_id, count in rows}


# -- money -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Converted:
    amount: int
    currency: str
    rate: Decimal
    rate_day: date | None
    """The day of the rate used; None when the order is in the reporting currency already."""


_RATES_FOR_ORDERS = text(
    """
    SELECT o.id, r.rate, r.day
      FROM orders o
      LEFT JOIN LATERAL (
        SELECT rate, day FROM exchange_rates r
         WHERE r.currency = o.currency AND r.day <= (o.placed_at AT TIME ZONE :tz)::date
         ORDER BY r.day DESC LIMIT 1) r ON true
     WHERE o.id = ANY(:ids)
    """
)


def convert(amount: int, currency: str, rate: Decimal, target: str) -> int:
    """Minor units of `currency` to minor units of `target`, rounding half to even."""
    scale = Decimal(10) ** (get_currency_precision(target) - get_currency_precision(currency))
    return int((Decimal(amount) * rate * scale).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


async def reporting_totals(
    session: AsyncSession, orders: Sequence[Order]
) -> dict[uuid.UUID, Converted | None]:
    """Each order's total in the tenant's reporting currency at the rate of the order's day
    (the latest rate on or before it, in the tenant's time zone); None when no rate is known."""
    settings = await settings_of(session)
    target = settings.reporting_currency
    foreign = [o.id for o in orders if o.currency != target]
    rates = {}
    if foreign:
        rows = await session.execute(_RATES_FOR_ORDERS, {"ids": foreign, "tz": settings.timezone})
        rates = {order_id: (rate, day) for order_id, rate, day in rows}
    found: dict[uuid.UUID, Converted | None] = {}
    for order in orders:
        if order.currency == target:
            found[order.id] = Converted(order.total, target, Decimal(1), None)
            continue
        rate, day = rates.get(order.id, (None, None))
        found[order.id] = (
            Converted(convert(order.total, order.currency, rate, target), target, rate, day) if rate else None
        )
    return found


MAX_RATES_PER_CALL = 1000


@dataclass(frozen=True, slots=True)
class RateInput:
    currency: str
    day: date
    rate: Decimal


async def set_rates(session: AsyncSession, rates: Sequence[RateInput], *, actor: str) -> int:
    """Upsert rates (units of the reporting currency per unit of `currency`); returns how many."""
    if not rates or len(rates) > MAX_RATES_PER_CALL:
        raise InvalidInput(Problem("rates", "INVALID_COUNT", f"Give 1 to {MAX_RATES_PER_CALL} rates."))
    problems = []
    for n, r in enumerate(rates, start=1):
        if not is_currency(r.currency.upper()):
            problems.append(Problem(f"rates.{n}.currency", "INVALID_CURRENCY", "Use an ISO 4217 code."))
        if not (r.rate.is_finite() and Decimal(0) < r.rate < Decimal(10) ** 12):
            problems.append(Problem(f"rates.{n}.rate", "INVALID_RATE", "A rate is a positive decimal."))
    if problems:
        raise InvalidInput(*problems)
    statement = pg_insert(ExchangeRate).values(
        [
            {
                "tenant_id": current_tenant(session),
                "currency": r.currency.upper(),
                "day": r.day,
                "rate": r.rate,
            }
            for r in rates
        ]
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["tenant_id", "currency", "day"],
            set_={"rate": statement.excluded.rate, "updated_at": func.now()},
        )
    )
    await audit.record(
        session,
        actor=actor,
        action="exchange_rates.set",
        target_type="ExchangeRate",
        after={
            "rates": [
                {"currency": r.currency.upper(), "day": r.day.isoformat(), "rate": str(r.rate)} for r in rates
            ]
        },
    )
    return len(rates)


async def list_rates(session: AsyncSession, currency: str, *, since: date, until: date) -> list[ExchangeRate]:
    rows = await session.scalars(
        select(ExchangeRate)
        .where(
            ExchangeRate.currency == currency.upper(), ExchangeRate.day >= since, ExchangeRate.day <= until
        )
        .order_by(ExchangeRate.day)
    )
    return list(rows)


# -- merges ------------------------------------------------------------------------------------


class _OrdersFollowTheirCustomer:
    """Orders move with a merge of their customer, and back with an unmerge."""

    name = "orders"

    async def move(self, session: AsyncSession, from_id: uuid.UUID, to_id: uuid.UUID) -> list[str]:
        moved = await session.scalars(
            update(Order).where(Order.customer_id == from_id).values(customer_id=to_id).returning(Order.id)
        )
        return [str(i) for i in moved]

    async def restore(
        self, session: AsyncSession, ids: Sequence[str], from_id: uuid.UUID, to_id: uuid.UUID
    ) -> None:
        await session.execute(
            update(Order)
            .where(Order.customer_id == from_id, Order.id.in_([uuid.UUID(i) for i in ids]))
            .values(customer_id=to_id)
        )


merges.register(_OrdersFollowTheirCustomer())
