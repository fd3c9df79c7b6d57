"""Orders in GraphQL: the Order type, order queries, recordOrder, exchange rates."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from brandloop.auth.permissions import Permission
from brandloop.errors import InvalidInput
from brandloop.graphql.context import Info
from brandloop.graphql.errors import UserError, user_errors
from brandloop.graphql.permissions import Needs
from brandloop.graphql.relay import BadInput, Connection, Node, global_id, paginate, pk_of
from brandloop.graphql.scalars import MinorUnits, Money
from brandloop.orders import service
from brandloop.orders.models import Order as OrderRow
from brandloop.orders.models import OrderLine as OrderLineRow
from brandloop.orders.service import (
    BuyerInput,
    LineInput,
    OrderFilter,
    OrderInput,
    OrderStatus,
    Outcome,
    RateInput,
)

if TYPE_CHECKING:
    from brandloop.customers.graphql import CustomerType

OrderStatusEnum = strawberry.enum(OrderStatus, name="OrderStatus")
OutcomeEnum = strawberry.enum(Outcome, name="RecordOutcome", description="What recording an order did.")
MAX_RATE_DAYS = 366


@strawberry.type(description="An amount converted to the tenant's reporting currency.")
class ConvertedMoney:
    amount: MinorUnits
    currency: str
    rate: Decimal = strawberry.field(description="Reporting-currency units per unit of the order's currency.")
    rate_day: date | None = strawberry.field(description="The day of the rate used; null for no conversion.")


@strawberry.type(name="OrderLine")
class OrderLineType:
    line_no: int
    sku: str
    product_name: str
    category: str | None
    quantity: int
    unit_price: Money
    line_total: Money

    @classmethod
    def of(cls, row: OrderLineRow, currency: str) -> OrderLineType:
        return cls(
            line_no=row.line_no,
            sku=row.sku,
            product_name=row.product_name,
            category=row.category,
            quantity=row.quantity,
            unit_price=Money(amount=row.unit_price, currency=currency),
            line_total=Money(amount=row.unit_price * row.quantity, currency=currency),
        )


@strawberry.type(name="Order", description="An order from one channel, in its own currency.")
class OrderType(Node):
    row: strawberry.Private[OrderRow]
    channel: str
    external_id: str = strawberry.field(description="The channel's own order id.")
    status: OrderStatusEnum  # type: ignore[valid-type]
    placed_at: datetime
    updated_at: datetime = strawberry.field(description="When the channel last changed the order.")
    recorded_at: datetime = strawberry.field(description="When Brandloop first stored it.")
    subtotal: Money
    discount: Money
    shipping: Money
    tax: Money
    total: Money
    refunded: Money
    ship_region: str | None = strawberry.field(description="Where it shipped (ISO 3166-2), when known.")
    seller_id: str | None = strawberry.field(description="The channel's id of the store that sold it.")

    @classmethod
    def of(cls, row: OrderRow) -> OrderType:
        money = lambda amount: Money(amount=amount, currency=row.currency)  # noqa: E731
        return cls(
            id=global_id("Order", row.id),
            row=row,
            channel=row.channel,
            external_id=row.external_id,
            status=OrderStatus(row.status),
            placed_at=row.placed_at,
            updated_at=row.source_updated_at,
            recorded_at=row.created_at,
            subtotal=money(row.subtotal),
            discount=money(row.discount),
            shipping=money(row.shipping),
            tax=money(row.tax),
            total=money(row.total),
            refunded=money(row.refunded),
            ship_region=row.ship_region,
            seller_id=row.seller_id,
        )

    @strawberry.field(description="The order's lines, in order.")
    async def lines(self, info: Info) -> list[OrderLineType]:
        ctx = info.context

        async def load(ids: list[uuid.UUID]) -> list[list[OrderLineRow]]:
            found = await ctx.run(service.lines_of, ids)
            return [found.get(i, []) for i in ids]

        rows = await ctx.loader("order.lines", load).load(self.row.id)
        return [OrderLineType.of(r, self.row.currency) for r in rows]

    @strawberry.field(description="The total at the rate of the order's day; null while no rate is known.")
    async def total_in_reporting_currency(self, info: Info) -> ConvertedMoney | None:
        ctx = info.context

        async def load(rows: list[OrderRow]) -> list[service.Converted | None]:
            found = await ctx.run(service.reporting_totals, rows)
            return [found[r.id] for r in rows]

        converted = await ctx.loader("order.reporting_total", load).load(self.row)
        if converted is None:
            return None
        return ConvertedMoney(
            amount=converted.amount,
            currency=converted.currency,
            rate=converted.rate,
            rate_day=converted.rate_day,
        )

    @strawberry.field(description="The customer profile the order belongs to, if the buyer was identified.")
    async def customer(
        self, info: Info
    ) -> Annotated[CustomerType, strawberry.lazy("brandloop.customers.graphql")] | None:
        from brandloop.customers.graphql import load_customer

        if self.row.customer_id is None:
            return None
        return await load_customer(info, self.row.customer_id)


async def load_order(info: Info, pk: uuid.UUID) -> OrderType | None:
    ctx = info.context

    async def load(ids: list[uuid.UUID]) -> list[OrderType | None]:
        found = await ctx.run(service.get_orders, ids)
        return [OrderType.of(found[i]) if i in found else None for i in ids]

    return await ctx.loader("order", load).load(pk)


async def customer_orders(
    info: Info, customer_id: uuid.UUID, first: int, after: str | None
) -> Connection[OrderType]:
    """One customer's orders; the customers of a page share one query (per `first`/`after`)."""
    ctx = info.context

    async def fetch(limit: int, cursor: uuid.UUID | None) -> list[OrderRow]:
        async def load(ids: list[uuid.UUID]) -> list[list[OrderRow]]:
            found = await ctx.run(service.orders_of_customers, ids, first=limit, after=cursor)
            return [found.get(i, []) for i in ids]

        return await ctx.loader(f"customer.orders:{limit}:{cursor}", load).load(customer_id)

    async def count() -> int:
        async def load(ids: list[uuid.UUID]) -> list[int]:
            found = await ctx.run(service.order_counts, ids)
            return [found.get(i, 0) for i in ids]

        return await ctx.loader("customer.order_count", load).load(customer_id)

    return await paginate(
        first, after, max_page_size=ctx.settings.max_page_size, fetch=fetch, count=count, node=OrderType.of
    )


@strawberry.input
class OrderFilterInput:
    channel: str | None = None
    status: OrderStatusEnum | None = None  # type: ignore[valid-type]
    placed_after: datetime | None = strawberry.field(default=None, description="Inclusive.")
    placed_before: datetime | None = strawberry.field(default=None, description="Exclusive.")
    customer_id: strawberry.ID | None = None

    def to_filter(self) -> OrderFilter:
        return OrderFilter(
            channel=self.channel,
            status=self.status,
            placed_after=self.placed_after,
            placed_before=self.placed_before,
            customer_id=pk_of(self.customer_id, "Customer") if self.customer_id else None,
        )


@strawberry.type(name="ExchangeRate")
class ExchangeRateType:
    currency: str
    day: date
    rate: Decimal


@strawberry.type
class OrderQueries:
    @strawberry.field(
        description="The tenant's orders, oldest first.", extensions=[Needs(Permission.ORDERS_READ)]
    )
    async def orders(
        self,
        info: Info,
        first: int = 20,
        after: str | None = None,
        filter: OrderFilterInput | None = None,
    ) -> Connection[OrderType]:
        ctx = info.context
        flt = filter.to_filter() if filter else OrderFilter()
        return await paginate(
            first,
            after,
            max_page_size=ctx.settings.max_page_size,
            fetch=lambda limit, cursor: ctx.run(service.list_orders, flt, first=limit, after=cursor),
            count=lambda: ctx.run(service.count_orders, flt),
            node=OrderType.of,
        )

    @strawberry.field(
        description="One order; null when none of yours has this id.",
        extensions=[Needs(Permission.ORDERS_READ)],
    )
    async def order(self, info: Info, id: strawberry.ID) -> OrderType | None:
        return await load_order(info, pk_of(id, "Order"))

    @strawberry.field(
        description=f"Rates of one currency between two days (at most {MAX_RATE_DAYS} days apart).",
        extensions=[Needs(Permission.ORDERS_READ)],
    )
    async def exchange_rates(
        self, info: Info, currency: str, since: date, until: date
    ) -> list[ExchangeRateType]:
        if not timedelta(0) <= until - since <= timedelta(days=MAX_RATE_DAYS):
            raise BadInput(f"`until` must be on or after `since`, at most {MAX_RATE_DAYS} days later.")
        rows = await info.context.run(service.list_rates, currency, since=since, until=until)
        return [ExchangeRateType(currency=r.currency, day=r.day, rate=r.rate) for r in rows]


@strawberry.input
class OrderLineInput:
    sku: str
    product_name: str
    quantity: int
    unit_price: MinorUnits
    category: str | None = None


@strawberry.input(description="Who bought, as the channel tells it. Every field is optional.")
class BuyerInputType:
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    buyer_id: str | None = strawberry.field(default=None, description="The channel's own id for the buyer.")
    wechat_unionid: str | None = None
    wechat_openid: str | None = None


@strawberry.input(
    description="An order as a channel reports it. Recording it again updates it when `updatedAt` is newer."
)
class RecordOrderInput:
    channel: str
    external_id: str
    status: OrderStatusEnum  # type: ignore[valid-type]
    currency: str
    total: MinorUnits
    placed_at: datetime
    lines: list[OrderLineInput]
    subtotal: MinorUnits | None = strawberry.field(
        default=None, description="Defaults to the sum of the lines."
    )
    discount: MinorUnits = MinorUnits(0)
    shipping: MinorUnits = MinorUnits(0)
    tax: MinorUnits = MinorUnits(0)
    refunded: MinorUnits = MinorUnits(0)
    updated_at: datetime | None = strawberry.field(default=None, description="Defaults to `placedAt`.")
    buyer: BuyerInputType | None = None
    ship_region: str | None = strawberry.field(
        default=None, description="Where it shipped: ISO 3166-2, e.g. CN-GD."
    )
    seller_id: str | None = strawberry.field(
        default=None, description="The channel's id of the store that sold it."
    )

    def to_input(self) -> OrderInput:
        buyer = self.buyer
        return OrderInput(
            channel=self.channel,
            external_id=self.external_id,
            status=OrderStatus(self.status).value,
            currency=self.currency,
            total=self.total,
            placed_at=self.placed_at,
            lines=[
                LineInput(x.sku, x.product_name, x.quantity, x.unit_price, x.category) for x in self.lines
            ],
            subtotal=self.subtotal,
            discount=self.discount,
            shipping=self.shipping,
            tax=self.tax,
            refunded=self.refunded,
            updated_at=self.updated_at,
            buyer=BuyerInput(
                name=buyer.name,
                email=buyer.email,
                phone=buyer.phone,
                buyer_id=buyer.buyer_id,
                wechat_unionid=buyer.wechat_unionid,
                wechat_openid=buyer.wechat_openid,
            )
            if buyer
            else None,
            ship_region=self.ship_region,
            seller_id=self.seller_id,
        )


@strawberry.type
class RecordOrderPayload:
    order: OrderType | None
    outcome: OutcomeEnum | None  # type: ignore[valid-type]
    user_errors: list[UserError]


@strawberry.input
class ExchangeRateInput:
    currency: str
    day: date
    rate: Decimal = strawberry.field(description="Reporting-currency units per unit of `currency`.")


@strawberry.input
class SetExchangeRatesInput:
    rates: list[ExchangeRateInput]


@strawberry.type
class SetExchangeRatesPayload:
    count: int
    user_errors: list[UserError]


@strawberry.type
class OrderMutations:
    @strawberry.mutation(
        description="Record an order from a channel, idempotently: the same order again is an update or nothing.",
        extensions=[Needs(Permission.ORDERS_WRITE)],
    )
    async def record_order(self, info: Info, input: RecordOrderInput) -> RecordOrderPayload:
        ctx = info.context

        async def record(session: AsyncSession) -> tuple[Outcome, uuid.UUID | None]:
            result = await service.ingest(session, [service.validate(input.to_input())])
            return result.outcomes[0]

        try:
            outcome, order_id = await ctx.mutate(record)
        except InvalidInput as error:
            return RecordOrderPayload(order=None, outcome=None, user_errors=user_errors(error))
        assert order_id is not None
        return RecordOrderPayload(order=await load_order(info, order_id), outcome=outcome, user_errors=[])

    @strawberry.mutation(
        description="Set exchange rates into the reporting currency (upserts by currency and day).",
        extensions=[Needs(Permission.SETTINGS_MANAGE)],
    )
    async def set_exchange_rates(self, info: Info, input: SetExchangeRatesInput) -> SetExchangeRatesPayload:
        rates = [RateInput(r.currency, r.day, r.rate) for r in input.rates]
        try:
            count = await info.context.mutate(service.set_rates, rates, actor=info.context.principal.subject)
        except InvalidInput as error:
            return SetExchangeRatesPayload(count=0, user_errors=user_errors(error))
        return SetExchangeRatesPayload(count=count, user_errors=[])
