"""Customers in GraphQL: the Customer type, its queries and its mutations."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from brandloop.auth.permissions import Permission
from brandloop.customers import merges, privacy, resolution, segments, service
from brandloop.customers.identities import IdentityKind, normalise
from brandloop.customers.models import Consent as ConsentRow
from brandloop.customers.models import Customer as CustomerRow
from brandloop.customers.models import CustomerIdentity as CustomerIdentityRow
from brandloop.customers.models import CustomerMerge as CustomerMergeRow
from brandloop.customers.models import Tag as TagRow
from brandloop.customers.privacy import Purpose
from brandloop.customers.service import CustomerFilter, LifecycleStage, Segment, TagKind, ValueTier
from brandloop.errors import InvalidInput, Problem
from brandloop.graphql.context import Info
from brandloop.graphql.errors import UserError, user_errors
from brandloop.graphql.permissions import Needs
from brandloop.graphql.relay import (
    BadInput,
    Connection,
    Node,
    global_id,
    paginate,
    pk_of,
)
from brandloop.graphql.scalars import Money
from brandloop.tenancy.service import settings_of

MAX_BLOCKED = 1000
MAX_HISTORY = 50

if TYPE_CHECKING:
    from brandloop.loyalty.graphql import AccountType
    from brandloop.orders.graphql import OrderType

SegmentEnum = strawberry.enum(
    Segment, name="Segment", description="RFM segments; docs/segmentation.md has the rules."
)
ValueTierEnum = strawberry.enum(
    ValueTier,
    name="ValueTier",
    description="Spend rank: top 1%, high 9%, core 20%, ordinary the rest; prospects have no order.",
)
LifecycleStageEnum = strawberry.enum(
    LifecycleStage,
    name="LifecycleStage",
    description="Where a customer stands: no order yet, new, active, dormant or churned.",
)
TagKindEnum = strawberry.enum(TagKind, name="TagKind")


@strawberry.type(name="Tag", description="A tenant-defined label on customers.")
class TagType:
    id: strawberry.ID
    name: str
    kind: TagKindEnum  # type: ignore[valid-type]

    @classmethod
    def of(cls, row: TagRow) -> TagType:
        return cls(id=global_id("Tag", row.id), name=row.name, kind=TagKind(row.kind))


IdentityKindEnum = strawberry.enum(IdentityKind, name="IdentityKind")


@strawberry.type(name="CustomerIdentity", description="A value that names the customer on a channel.")
class CustomerIdentityType:
    kind: IdentityKindEnum  # type: ignore[valid-type]
    value: str
    source: str = strawberry.field(description="Where it came from: a channel, or `manual`.")
    created_at: datetime

    @classmethod
    def of(cls, row: CustomerIdentityRow) -> CustomerIdentityType:
        return cls(kind=IdentityKind(row.kind), value=row.value, source=row.source, created_at=row.created_at)


@strawberry.type
class MovedCount:
    what: str = strawberry.field(description="identities, tags, orders, ...")
    count: int


@strawberry.type(
    name="CustomerMerge", description="One profile merged into another, and whether it was undone."
)
class CustomerMergeType:
    id: strawberry.ID
    survivor_id: strawberry.ID
    merged_id: strawberry.ID
    rule: str = strawberry.field(description="`manual`, or the identity that joined them: `identity:email`.")
    actor: str
    created_at: datetime
    undone_at: datetime | None
    undone_by: str | None
    moved: list[MovedCount] = strawberry.field(description="How many of each kind of thing moved.")

    @classmethod
    def of(cls, row: CustomerMergeRow) -> CustomerMergeType:
        return cls(
            id=global_id("CustomerMerge", row.id),
            survivor_id=global_id("Customer", row.survivor_id),
            merged_id=global_id("Customer", row.merged_id),
            rule=row.rule,
            actor=row.actor,
            created_at=row.created_at,
            undone_at=row.undone_at,
            undone_by=row.undone_by,
            moved=[MovedCount(what=name, count=len(ids)) for name, ids in sorted(row.moved.items())],
        )


ConsentPurposeEnum = strawberry.enum(Purpose, name="ConsentPurpose")


@strawberry.type(name="Consent", description="A grant or withdrawal of consent, as recorded.")
class ConsentType:
    channel: str
    purpose: ConsentPurposeEnum  # type: ignore[valid-type]
    granted: bool
    source: str = strawberry.field(description="Where it was given, e.g. `wechat_member_card`.")
    evidence: str | None = strawberry.field(description="What proves it; stored as given, render it escaped.")
    actor: str
    recorded_at: datetime

    @classmethod
    def of(cls, row: ConsentRow) -> ConsentType:
        return cls(
            channel=row.channel,
            purpose=Purpose(row.purpose),
            granted=row.granted,
            source=row.source,
            evidence=row.evidence,
            actor=row.actor,
            recorded_at=row.recorded_at,
        )


async def _consent_history(info: Info, customer_id: uuid.UUID) -> list[ConsentRow]:
    ctx = info.context

    async def load(ids: list[uuid.UUID]) -> list[list[ConsentRow]]:
        found = await ctx.run(privacy.consent_history, ids)
        return [found.get(i, []) for i in ids]

    return await ctx.loader("customer.consents", load).load(customer_id)


@strawberry.type(description="Recency, frequency and monetary value, scored 1-5 within the tenant.")
class RfmScores:
    recency_days: int | None = strawberry.field(description="Days since the last qualifying order.")
    frequency: int = strawberry.field(description="Qualifying orders in the RFM window.")
    monetary: Money = strawberry.field(description="Spend in the window, in the reporting currency.")
    lifetime_spend: Money
    r: int | None = strawberry.field(description="Null when there is no order in the window.")
    f: int | None
    m: int | None
    segment: SegmentEnum | None  # type: ignore[valid-type]
    scored_at: datetime


async def reporting_currency(info: Info) -> str:
    ctx = info.context

    async def load(keys: list[str]) -> list[str]:
        settings = await ctx.run(settings_of)
        return [settings.reporting_currency for _ in keys]

    return await ctx.loader("tenant.reporting_currency", load).load("")


@strawberry.type(name="Customer", description="One real person, merged across channels.")
class CustomerType(Node):
    pk: strawberry.Private[uuid.UUID]
    display_name: str
    email: str | None = strawberry.field(description="Normalised: trimmed and lower-case.")
    phone: str | None = strawberry.field(description="E.164, e.g. +8613812345678.")
    lifecycle_stage: LifecycleStageEnum  # type: ignore[valid-type]
    created_at: datetime
    updated_at: datetime
    merged_into_pk: strawberry.Private[uuid.UUID | None]
    row: strawberry.Private[CustomerRow]
    value_tier: ValueTierEnum  # type: ignore[valid-type]
    first_order_at: datetime | None
    last_order_at: datetime | None
    erased_at: datetime | None = strawberry.field(description="When the person's data was erased.")

    @classmethod
    def of(cls, row: CustomerRow) -> CustomerType:
        return cls(
            id=global_id("Customer", row.id),
            pk=row.id,
            merged_into_pk=row.merged_into_id,
            row=row,
            value_tier=ValueTier(row.value_tier),
            first_order_at=row.first_order_at,
            last_order_at=row.last_order_at,
            erased_at=row.erased_at,
            display_name=row.display_name,
            email=row.email,
            phone=row.phone,
            lifecycle_stage=LifecycleStage(row.lifecycle_stage),
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    @strawberry.field(
        description="RFM scores as last computed; null until the profile was scored with an order."
    )
    async def rfm(self, info: Info) -> RfmScores | None:
        row = self.row
        if row.scored_at is None or row.first_order_at is None:
            return None
        currency = await reporting_currency(info)
        return RfmScores(
            recency_days=row.recency_days,
            frequency=row.frequency or 0,
            monetary=Money(amount=row.monetary or 0, currency=currency),
            lifetime_spend=Money(amount=row.lifetime_spend or 0, currency=currency),
            r=row.r_score,
            f=row.f_score,
            m=row.m_score,
            segment=Segment(row.rfm_segment) if row.rfm_segment else None,
            scored_at=row.scored_at,
        )

    @strawberry.field(description="The consents in force: the latest record per channel and purpose.")
    async def consents(self, info: Info) -> list[ConsentType]:
        return [ConsentType.of(c) for c in privacy.in_force(await _consent_history(info, self.pk))]

    @strawberry.field(description="Every grant and withdrawal, newest first.")
    async def consent_history(self, info: Info) -> list[ConsentType]:
        return [ConsentType.of(c) for c in await _consent_history(info, self.pk)]

    @strawberry.field(description="While this profile is merged: the profile it was merged into.")
    async def merged_into(self, info: Info) -> CustomerType | None:
        return await load_customer(info, self.merged_into_pk) if self.merged_into_pk else None

    @strawberry.field(description=f"Merges this profile took part in, newest first (the last {MAX_HISTORY}).")
    async def merge_history(self, info: Info) -> list[CustomerMergeType]:
        rows = await info.context.run(merges.merges_of, self.pk, limit=MAX_HISTORY)
        return [CustomerMergeType.of(r) for r in rows]

    @strawberry.field(description="The customer's orders from every channel, oldest first.")
    async def orders(
        self, info: Info, first: int = 20, after: str | None = None
    ) -> Connection[Annotated[OrderType, strawberry.lazy("brandloop.orders.graphql")]]:
        from brandloop.orders.graphql import customer_orders

        return await customer_orders(info, self.pk, first, after)

    @strawberry.field(
        description="The customer's loyalty accounts, one per program they are enrolled in.",
        extensions=[Needs(Permission.LOYALTY_READ)],
    )
    async def loyalty(
        self, info: Info
    ) -> list[Annotated[AccountType, strawberry.lazy("brandloop.loyalty.graphql")]]:
        from brandloop.loyalty.graphql import customer_accounts

        return await customer_accounts(info, self.pk)

    @strawberry.field(description="What identifies the customer on each channel.")
    async def identities(self, info: Info) -> list[CustomerIdentityType]:
        ctx = info.context

        async def load(ids: list[uuid.UUID]) -> list[list[CustomerIdentityType]]:
            found = await ctx.run(resolution.identities_of, ids)
            return [[CustomerIdentityType.of(i) for i in found.get(c, [])] for c in ids]

        return await ctx.loader("customer.identities", load).load(self.pk)

    @strawberry.field(description="The customer's tags, by name.")
    async def tags(self, info: Info) -> list[TagType]:
        ctx = info.context

        async def load(ids: list[uuid.UUID]) -> list[list[TagType]]:
            found = await ctx.run(service.tags_of, ids)
            return [[TagType.of(t) for t in found.get(i, [])] for i in ids]

        return await ctx.loader("customer.tags", load).load(self.pk)


async def load_customer(info: Info, pk: uuid.UUID) -> CustomerType | None:
    """One customer through the request's DataLoader (None when not visible to the tenant)."""
    ctx = info.context

    async def load(ids: list[uuid.UUID]) -> list[CustomerType | None]:
        found = await ctx.run(service.get_customers, ids)
        return [CustomerType.of(found[i]) if i in found else None for i in ids]

    return await ctx.loader("customer", load).load(pk)


@strawberry.input(description="Narrows a customer list; all given conditions must hold.")
class CustomerFilterInput:
    search: str | None = strawberry.field(
        default=None, description="Part of the name, email or phone, case-insensitive."
    )
    tags: list[str] | None = strawberry.field(
        default=None, description="Tag names the customer must all carry."
    )
    lifecycle_stage: LifecycleStageEnum | None = None  # type: ignore[valid-type]
    segment: SegmentEnum | None = None  # type: ignore[valid-type]
    value_tier: ValueTierEnum | None = None  # type: ignore[valid-type]

    def to_filter(self) -> CustomerFilter:
        return CustomerFilter(
            search=self.search,
            tags=tuple(self.tags or ()),
            lifecycle_stage=self.lifecycle_stage,
            segment=self.segment,
            value_tier=self.value_tier,
        )


@strawberry.type
class CustomerQueries:
    @strawberry.field(
        description="The tenant's customers, oldest first.",
        extensions=[Needs(Permission.CUSTOMERS_READ)],
    )
    async def customers(
        self,
        info: Info,
        first: int = 20,
        after: str | None = None,
        filter: CustomerFilterInput | None = None,
    ) -> Connection[CustomerType]:
        ctx = info.context
        flt = filter.to_filter() if filter else CustomerFilter()
        return await paginate(
            first,
            after,
            max_page_size=ctx.settings.max_page_size,
            fetch=lambda limit, cursor: ctx.run(service.list_customers, flt, first=limit, after=cursor),
            count=lambda: ctx.run(service.count_customers, flt),
            node=CustomerType.of,
        )

    @strawberry.field(
        description="One customer; null when no customer of yours has this id.",
        extensions=[Needs(Permission.CUSTOMERS_READ)],
    )
    async def customer(self, info: Info, id: strawberry.ID) -> CustomerType | None:
        return await load_customer(info, pk_of(id, "Customer"))

    @strawberry.field(
        description="The tenant's tags, oldest first.",
        extensions=[Needs(Permission.CUSTOMERS_READ)],
    )
    async def tags(self, info: Info, first: int = 20, after: str | None = None) -> Connection[TagType]:
        ctx = info.context
        return await paginate(
            first,
            after,
            max_page_size=ctx.settings.max_page_size,
            fetch=lambda limit, cursor: ctx.run(service.list_tags, first=limit, after=cursor),
            count=lambda: ctx.run(service.count_tags),
            node=TagType.of,
        )


@strawberry.type(name="BlockedIdentityValue")
class BlockedIdentityValueType:
    kind: IdentityKindEnum  # type: ignore[valid-type]
    value: str
    created_at: datetime


@strawberry.type
class SegmentCountType:
    segment: SegmentEnum | None = strawberry.field(description="Null for prospects (no order yet).")  # type: ignore[valid-type]
    customers: int
    revenue: Money = strawberry.field(description="Spend in the RFM window.")


@strawberry.type
class SegmentSummary:
    scored_at: datetime | None = strawberry.field(description="When the scores were computed; null if never.")
    segments: list[SegmentCountType]


@strawberry.type
class SegmentQueries:
    @strawberry.field(
        description="Customers and revenue per RFM segment, as last computed.",
        extensions=[Needs(Permission.CUSTOMERS_READ)],
    )
    async def segment_summary(self, info: Info) -> SegmentSummary:
        counts, scored_at = await info.context.run(segments.summary)
        currency = await reporting_currency(info)
        return SegmentSummary(
            scored_at=scored_at,
            segments=[
                SegmentCountType(
                    segment=Segment(c.segment) if c.segment else None,
                    customers=c.customers,
                    revenue=Money(amount=c.revenue, currency=currency),
                )
                for c in counts
            ],
        )


@strawberry.type
class BlocklistQueries:
    @strawberry.field(
        description=f"Identity values never matched on, beyond the built-in placeholders (at most {MAX_BLOCKED} listed).",
        extensions=[Needs(Permission.CUSTOMERS_READ)],
    )
    async def blocked_identity_values(self, info: Info) -> list[BlockedIdentityValueType]:
        rows = await info.context.run(resolution.blocked_values, limit=MAX_BLOCKED)
        return [
            BlockedIdentityValueType(kind=IdentityKind(r.kind), value=r.value, created_at=r.created_at)
            for r in rows
        ]


@strawberry.input(description="A value such as a shop's shared phone, which must never join two buyers.")
class IdentityValueInput:
    kind: IdentityKindEnum  # type: ignore[valid-type]
    value: str


@strawberry.type
class IdentityValuePayload:
    kind: IdentityKindEnum | None  # type: ignore[valid-type]
    value: str | None = strawberry.field(description="As normalised and stored.")
    user_errors: list[UserError]


@strawberry.input
class CreateCustomerInput:
    display_name: str
    email: str | None = None
    phone: str | None = None


@strawberry.input(description="Fields left out keep their value; email or phone set to null clear it.")
class UpdateCustomerInput:
    id: strawberry.ID
    display_name: str | None = strawberry.UNSET
    email: str | None = strawberry.UNSET
    phone: str | None = strawberry.UNSET


@strawberry.input
class DeleteCustomerInput:
    id: strawberry.ID


@strawberry.input(description="Customers and tag names; unknown tag names are created.")
class CustomerTagsInput:
    ids: list[strawberry.ID]
    tags: list[str]


@strawberry.type
class CustomerPayload:
    customer: CustomerType | None
    user_errors: list[UserError]


@strawberry.type
class DeleteCustomerPayload:
    deleted_id: strawberry.ID | None
    user_errors: list[UserError]


@strawberry.type
class CustomerTagsPayload:
    customers: list[CustomerType]
    user_errors: list[UserError]


def _pks(ids: list[strawberry.ID], field: str) -> list[uuid.UUID]:
    """Row ids from global ids, as a user error (not a GraphQL error) when one is not ours."""
    try:
        return [pk_of(i, "Customer") for i in ids]
    except BadInput as error:
        raise InvalidInput(Problem(field, "INVALID_ID", str(error))) from error


@strawberry.input(description="Profiles of one person: everything of the merged ones moves to the survivor.")
class MergeCustomersInput:
    survivor_id: strawberry.ID
    merged_ids: list[strawberry.ID]


@strawberry.type
class MergeCustomersPayload:
    customer: CustomerType | None = strawberry.field(description="The survivor.")
    merges: list[CustomerMergeType]
    user_errors: list[UserError]


@strawberry.input
class UnmergeCustomerInput:
    id: strawberry.ID = strawberry.field(description="The merged profile to restore.")


@strawberry.type
class UnmergeCustomerPayload:
    customer: CustomerType | None = strawberry.field(description="The restored profile.")
    survivor: CustomerType | None
    user_errors: list[UserError]


@strawberry.input
class RecordConsentInput:
    customer_id: strawberry.ID
    channel: str
    purpose: ConsentPurposeEnum  # type: ignore[valid-type]
    granted: bool = strawberry.field(description="False records a withdrawal.")
    source: str
    evidence: str | None = None


@strawberry.type
class RecordConsentPayload:
    consent: ConsentType | None
    user_errors: list[UserError]


@strawberry.input
class CustomerPrivacyInput:
    customer_id: strawberry.ID


@strawberry.type
class ExportCustomerDataPayload:
    data: strawberry.scalars.JSON | None = strawberry.field(
        description="Everything held about the person: profiles (merged ones too), identities, tags, consents, orders."
    )
    user_errors: list[UserError]


@strawberry.type
class EraseCustomerPayload:
    customer: CustomerType | None = strawberry.field(description="The profile, now anonymous.")
    user_errors: list[UserError]


@strawberry.input
class RecomputeSegmentsInput:
    as_of: datetime | None = strawberry.field(
        default=None, description="Score as of this moment; now by default."
    )


@strawberry.type
class RecomputeSegmentsPayload:
    customers_scored: int
    user_errors: list[UserError]


@strawberry.input(description="Tag every customer a filter matches (the filter of `customers`).")
class TagCustomersByFilterInput:
    filter: CustomerFilterInput
    tags: list[str]


@strawberry.type
class TagCustomersByFilterPayload:
    tagged: int = strawberry.field(
        description="New customer-tag links made (ones already there are not counted)."
    )
    user_errors: list[UserError]


@strawberry.type
class CustomerMutations:
    @strawberry.mutation(
        description="Recompute lifecycle stages, RFM scores and value tiers for all customers (one SQL statement).",
        extensions=[Needs(Permission.CUSTOMERS_WRITE)],
    )
    async def recompute_segments(self, info: Info, input: RecomputeSegmentsInput) -> RecomputeSegmentsPayload:
        scored = await info.context.mutate(segments.recompute, as_of=input.as_of)
        return RecomputeSegmentsPayload(customers_scored=scored, user_errors=[])

    @strawberry.mutation(extensions=[Needs(Permission.CUSTOMERS_WRITE)])
    async def tag_customers_by_filter(
        self, info: Info, input: TagCustomersByFilterInput
    ) -> TagCustomersByFilterPayload:
        try:
            tagged = await info.context.mutate(service.tag_by_filter, input.filter.to_filter(), input.tags)
        except InvalidInput as error:
            return TagCustomersByFilterPayload(tagged=0, user_errors=user_errors(error))
        return TagCustomersByFilterPayload(tagged=tagged, user_errors=[])

    @strawberry.mutation(extensions=[Needs(Permission.CUSTOMERS_WRITE)])
    async def record_consent(self, info: Info, input: RecordConsentInput) -> RecordConsentPayload:
        ctx = info.context
        try:
            (pk,) = _pks([input.customer_id], "customerId")
            row = await ctx.mutate(
                privacy.record_consent,
                pk,
                channel=input.channel,
                purpose=Purpose(input.purpose),
                granted=input.granted,
                source=input.source,
                evidence=input.evidence,
                actor=ctx.principal.subject,
            )
        except InvalidInput as error:
            return RecordConsentPayload(consent=None, user_errors=user_errors(error))
        return RecordConsentPayload(consent=ConsentType.of(row), user_errors=[])

    @strawberry.mutation(
        description="Everything held about a person, as JSON (an audited action).",
        extensions=[Needs(Permission.CUSTOMERS_PRIVACY)],
    )
    async def export_customer_data(
        self, info: Info, input: CustomerPrivacyInput
    ) -> ExportCustomerDataPayload:
        ctx = info.context
        try:
            (pk,) = _pks([input.customer_id], "customerId")
            data = await ctx.mutate(privacy.export_customer, pk, actor=ctx.principal.subject)
        except InvalidInput as error:
            return ExportCustomerDataPayload(data=None, user_errors=user_errors(error))
        return ExportCustomerDataPayload(data=data, user_errors=[])

    @strawberry.mutation(
        description="Erase a person's data, keeping anonymous order facts for the totals. Cannot be undone.",
        extensions=[Needs(Permission.CUSTOMERS_PRIVACY)],
    )
    async def erase_customer(self, info: Info, input: CustomerPrivacyInput) -> EraseCustomerPayload:
        ctx = info.context
        try:
            (pk,) = _pks([input.customer_id], "customerId")
            row = await ctx.mutate(privacy.erase_customer, pk, actor=ctx.principal.subject)
        except InvalidInput as error:
            return EraseCustomerPayload(customer=None, user_errors=user_errors(error))
        return EraseCustomerPayload(customer=CustomerType.of(row), user_errors=[])

    @strawberry.mutation(extensions=[Needs(Permission.CUSTOMERS_WRITE)])
    async def merge_customers(self, info: Info, input: MergeCustomersInput) -> MergeCustomersPayload:
        ctx = info.context
        try:
            (survivor,) = _pks([input.survivor_id], "survivorId")
            records = await ctx.mutate(
                merges.merge_customers,
                survivor,
                _pks(input.merged_ids, "mergedIds"),
                actor=ctx.principal.subject,
            )
        except InvalidInput as error:
            return MergeCustomersPayload(customer=None, merges=[], user_errors=user_errors(error))
        return MergeCustomersPayload(
            customer=await load_customer(info, survivor),
            merges=[CustomerMergeType.of(r) for r in records],
            user_errors=[],
        )

    @strawberry.mutation(extensions=[Needs(Permission.CUSTOMERS_WRITE)])
    async def unmerge_customer(self, info: Info, input: UnmergeCustomerInput) -> UnmergeCustomerPayload:
        ctx = info.context
        try:
            (pk,) = _pks([input.id], "id")
            record = await ctx.mutate(merges.unmerge_customer, pk, actor=ctx.principal.subject)
        except InvalidInput as error:
            return UnmergeCustomerPayload(customer=None, survivor=None, user_errors=user_errors(error))
        return UnmergeCustomerPayload(
            customer=await load_customer(info, pk),
            survivor=await load_customer(info, record.survivor_id),
            user_errors=[],
        )

    @strawberry.mutation(extensions=[Needs(Permission.SETTINGS_MANAGE)])
    async def block_identity_value(self, info: Info, input: IdentityValueInput) -> IdentityValuePayload:
        try:
            identity = normalise(IdentityKind(input.kind), input.value, "value")
            await info.context.mutate(resolution.block_value, identity, actor=info.context.principal.subject)
        except InvalidInput as error:
            return IdentityValuePayload(kind=None, value=None, user_errors=user_errors(error))
        return IdentityValuePayload(kind=identity.kind, value=identity.value, user_errors=[])

    @strawberry.mutation(extensions=[Needs(Permission.SETTINGS_MANAGE)])
    async def unblock_identity_value(self, info: Info, input: IdentityValueInput) -> IdentityValuePayload:
        try:
            identity = normalise(IdentityKind(input.kind), input.value, "value")
            if not await info.context.mutate(
                resolution.unblock_value, identity, actor=info.context.principal.subject
            ):
                raise InvalidInput(Problem("value", "NOT_FOUND", "This value is not on the blocklist."))
        except InvalidInput as error:
            return IdentityValuePayload(kind=None, value=None, user_errors=user_errors(error))
        return IdentityValuePayload(kind=identity.kind, value=identity.value, user_errors=[])

    @strawberry.mutation(extensions=[Needs(Permission.CUSTOMERS_WRITE)])
    async def create_customer(self, info: Info, input: CreateCustomerInput) -> CustomerPayload:
        try:
            row = await info.context.mutate(
                service.create_customer,
                display_name=input.display_name,
                email=input.email,
                phone=input.phone,
            )
        except InvalidInput as error:
            return CustomerPayload(customer=None, user_errors=user_errors(error))
        return CustomerPayload(customer=CustomerType.of(row), user_errors=[])

    @strawberry.mutation(extensions=[Needs(Permission.CUSTOMERS_WRITE)])
    async def update_customer(self, info: Info, input: UpdateCustomerInput) -> CustomerPayload:
        changes = {
            name: value
            for name, value in (
                ("display_name", input.display_name),
                ("email", input.email),
                ("phone", input.phone),
            )
            if value is not strawberry.UNSET
        }
        try:
            (pk,) = _pks([input.id], "id")
            row = await info.context.mutate(service.update_customer, pk, changes)
        except InvalidInput as error:
            return CustomerPayload(customer=None, user_errors=user_errors(error))
        return CustomerPayload(customer=CustomerType.of(row), user_errors=[])

    @strawberry.mutation(extensions=[Needs(Permission.CUSTOMERS_WRITE)])
    async def delete_customer(self, info: Info, input: DeleteCustomerInput) -> DeleteCustomerPayload:
        try:
            (pk,) = _pks([input.id], "id")
            await info.context.mutate(service.delete_customer, pk)
        except InvalidInput as error:
            return DeleteCustomerPayload(deleted_id=None, user_errors=user_errors(error))
        return DeleteCustomerPayload(deleted_id=input.id, user_errors=[])

    @strawberry.mutation(extensions=[Needs(Permission.CUSTOMERS_WRITE)])
    async def add_customer_tags(self, info: Info, input: CustomerTagsInput) -> CustomerTagsPayload:
        try:
            rows = await info.context.mutate(service.add_tags, _pks(input.ids, "ids"), input.tags)
        except InvalidInput as error:
            return CustomerTagsPayload(customers=[], user_errors=user_errors(error))
        return CustomerTagsPayload(customers=[CustomerType.of(r) for r in rows], user_errors=[])

    @strawberry.mutation(extensions=[Needs(Permission.CUSTOMERS_WRITE)])
    async def remove_customer_tags(self, info: Info, input: CustomerTagsInput) -> CustomerTagsPayload:
        try:
            rows = await info.context.mutate(service.remove_tags, _pks(input.ids, "ids"), input.tags)
        except InvalidInput as error:
            return CustomerTagsPayload(customers=[], user_errors=user_errors(error))
        return CustomerTagsPayload(customers=[CustomerType.of(r) for r in rows], user_errors=[])
