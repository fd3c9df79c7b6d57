"""Channel conflicts in GraphQL: partners, price policies and promotions, listings, detection,
and the conflict workflow with its evidence and timeline."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.scalars import JSON

from brandloop.auth.permissions import Permission
from brandloop.conflicts import detection, service
from brandloop.conflicts.models import (
    Cause,
    Conflict,
    ConflictStatus,
    ConflictType,
    Event,
    Evidence,
    Partner,
    PartnerLevel,
    PriceException,
    PricePolicy,
    Severity,
    Strategy,
)
from brandloop.errors import InvalidInput
from brandloop.graphql.context import Info
from brandloop.graphql.errors import UserError, user_errors
from brandloop.graphql.permissions import Needs
from brandloop.graphql.relay import BadInput, Connection, Node, global_id, paginate, pk_of
from brandloop.tenancy.service import settings_of

PartnerLevelEnum = strawberry.enum(PartnerLevel, name="PartnerLevel")
ConflictTypeEnum = strawberry.enum(ConflictType, name="ConflictType")
CauseEnum = strawberry.enum(Cause, name="ConflictCause")
ConflictStatusEnum = strawberry.enum(ConflictStatus, name="ConflictStatus")
StrategyEnum = strawberry.enum(Strategy, name="ResolutionStrategy")
SeverityEnum = strawberry.enum(Severity, name="ConflictSeverity")


@strawberry.type(name="ChannelPartner")
class PartnerType(Node):
    pk: strawberry.Private[uuid.UUID]
    name: str
    level: PartnerLevelEnum  # type: ignore[valid-type]
    channel: str
    seller_id: str | None = strawberry.field(
        description="The channel's own id of the seller, as listings name it."
    )
    authorised: bool
    territories: list[str] = strawberry.field(
        description="ISO 3166-2 regions it may sell in; empty: anywhere."
    )
    contacts: JSON
    violation_level: int = strawberry.field(description="Confirmed conflicts since the last reset.")
    created_at: datetime

    @strawberry.field(description="Its step on the tenant's escalation ladder; null at level 0.")
    async def escalation_step(self, info: Info) -> str | None:
        ctx = info.context

        async def load(keys: list[str]) -> list[list[str]]:  # one read of the settings per request
            ladder = list((await ctx.run(settings_of)).escalation_ladder)
            return [ladder for _ in keys]

        return service.escalation_step(self.row, await ctx.loader("escalation_ladder", load).load("ladder"))

    row: strawberry.Private[Partner]

    @classmethod
    def of(cls, row: Partner) -> PartnerType:
        return cls(
            id=global_id("ChannelPartner", row.id), pk=row.id, name=row.name, level=PartnerLevel(row.level),
            channel=row.channel, seller_id=row.seller_id, authorised=row.authorised,
            territories=list(row.territories), contacts=row.contacts, violation_level=row.violation_level,
            created_at=row.created_at, row=row,
        )  # fmt: skip


@strawberry.type(name="PriceException")
class ExceptionType:
    id: strawberry.ID
    min_price: int = strawberry.field(description="In the policy's currency, minor units.")
    starts_at: datetime
    ends_at: datetime
    partner_ids: list[strawberry.ID]
    channels: list[str]
    reason: str

    @classmethod
    def of(cls, row: PriceException) -> ExceptionType:
        return cls(
            id=strawberry.ID(global_id("PriceException", row.id)), min_price=row.min_price,
            starts_at=row.starts_at, ends_at=row.ends_at,
            partner_ids=[strawberry.ID(global_id("ChannelPartner", p)) for p in row.partner_ids],
            channels=list(row.channels), reason=row.reason,
        )  # fmt: skip


@strawberry.type(name="PricePolicy", description="A minimum advertised price (MAP) for a SKU.")
class PolicyType(Node):
    pk: strawberry.Private[uuid.UUID]
    sku: str
    channel: str | None = strawberry.field(description="Null: every channel.")
    currency: str
    min_price: int = strawberry.field(description="Minor units.")
    valid_from: datetime
    valid_until: datetime | None

    @strawberry.field(description="Its promotions, by start.")
    async def exceptions(self, info: Info) -> list[ExceptionType]:
        ctx = info.context

        async def load(ids: list[uuid.UUID]) -> list[list[ExceptionType]]:
            found = await ctx.run(service.exceptions_of, ids)
            return [[ExceptionType.of(e) for e in found[i]] for i in ids]

        return await ctx.loader("policy.exceptions", load).load(self.pk)

    @classmethod
    def of(cls, row: PricePolicy) -> PolicyType:
        return cls(
            id=global_id("PricePolicy", row.id), pk=row.id, sku=row.sku, channel=row.channel,
            currency=row.currency, min_price=row.min_price, valid_from=row.valid_from, valid_until=row.valid_until,
        )  # fmt: skip


@strawberry.type(name="ConflictEvidence")
class EvidenceType:
    observed_at: datetime
    price: int | None
    currency: str | None
    policy_price: int | None = strawberry.field(description="The MAP it broke, in `policyCurrency`.")
    policy_currency: str | None
    url: str | None
    listing_id: str | None
    region: str | None
    notes: str | None
    order_id: strawberry.ID | None = strawberry.field(
        description="An order shipped outside its seller's territory."
    )
    attachments: list[str] = strawberry.field(description="References to files kept elsewhere.")

    @classmethod
    def of(cls, row: Evidence) -> EvidenceType:
        return cls(
            observed_at=row.observed_at, price=row.price, currency=row.currency, policy_price=row.policy_price,
            policy_currency=row.policy_currency, url=row.url, listing_id=row.listing_id, region=row.region,
            notes=row.notes, order_id=strawberry.ID(global_id("Order", row.order_id)) if row.order_id else None,
            attachments=list(row.attachments),
        )  # fmt: skip


@strawberry.type(name="ConflictEvent")
class EventType:
    at: datetime
    actor: str
    kind: str = strawberry.field(description="opened, evidence, status, note or assigned.")
    from_status: ConflictStatusEnum | None  # type: ignore[valid-type]
    to_status: ConflictStatusEnum | None  # type: ignore[valid-type]
    note: str | None

    @classmethod
    def of(cls, row: Event) -> EventType:
        return cls(
            at=row.at, actor=row.actor, kind=row.kind, note=row.note,
            from_status=ConflictStatus(row.from_status) if row.from_status else None,
            to_status=ConflictStatus(row.to_status) if row.to_status else None,
        )  # fmt: skip


@strawberry.type(name="Conflict")
class ConflictRecord(Node):
    pk: strawberry.Private[uuid.UUID]
    partner_pk: strawberry.Private[uuid.UUID]
    type: ConflictTypeEnum  # type: ignore[valid-type]
    cause: CauseEnum  # type: ignore[valid-type]
    sku: str | None
    channel: str | None
    region: str | None
    severity: SeverityEnum = strawberry.field(  # type: ignore[valid-type]
        description="From the worst breach (share below MAP) and the repeat count, unless overridden."
    )
    breaches: int = strawberry.field(description="Observations (or orders) that broke the policy.")
    worst_gap: float = strawberry.field(description="The worst breach as a share below the policy's price.")
    owner: str | None
    status: ConflictStatusEnum  # type: ignore[valid-type]
    confirmed: bool = strawberry.field(description="Acted on (a notice, an escalation, a resolution).")
    resolution_strategy: StrategyEnum | None  # type: ignore[valid-type]
    resolution: str | None
    opened_at: datetime
    last_breach_at: datetime
    closed_at: datetime | None

    @strawberry.field
    async def partner(self, info: Info) -> PartnerType:
        ctx = info.context

        async def load(ids: list[uuid.UUID]) -> list[PartnerType]:
            found = await ctx.run(service.partners_of, ids)
            return [PartnerType.of(found[i]) for i in ids]

        return await ctx.loader("conflict.partner", load).load(self.partner_pk)

    @strawberry.field(description="What was seen, oldest first.")
    async def evidence(self, info: Info) -> list[EvidenceType]:
        ctx = info.context

        async def load(ids: list[uuid.UUID]) -> list[list[EvidenceType]]:
            found = await ctx.run(service.evidence_of, ids)
            return [[EvidenceType.of(e) for e in found[i]] for i in ids]

        return await ctx.loader("conflict.evidence", load).load(self.pk)

    @strawberry.field(description="Every change and note, with who and when, oldest first.")
    async def timeline(self, info: Info) -> list[EventType]:
        ctx = info.context

        async def load(ids: list[uuid.UUID]) -> list[list[EventType]]:
            found = await ctx.run(service.timeline_of, ids)
            return [[EventType.of(e) for e in found[i]] for i in ids]

        return await ctx.loader("conflict.timeline", load).load(self.pk)

    @classmethod
    def of(cls, row: Conflict) -> ConflictRecord:
        return cls(
            id=global_id("Conflict", row.id), pk=row.id, partner_pk=row.partner_id, type=ConflictType(row.type),
            cause=Cause(row.cause), sku=row.sku, channel=row.channel, region=row.region,
            severity=Severity(row.severity), breaches=row.breaches, worst_gap=float(row.worst_gap), owner=row.owner,
            status=ConflictStatus(row.status), confirmed=row.confirmed,
            resolution_strategy=Strategy(row.resolution_strategy) if row.resolution_strategy else None,
            resolution=row.resolution, opened_at=row.opened_at, last_breach_at=row.last_breach_at,
            closed_at=row.closed_at,
        )  # fmt: skip


@strawberry.type(name="ConflictCount")
class CountType:
    key: str
    count: int


@strawberry.type(name="PartnerConflictCount")
class PartnerCountType:
    partner: PartnerType
    count: int


@strawberry.type(name="ConflictSummary")
class SummaryType:
    open: int = strawberry.field(description="Open at the end of the period.")
    new: int = strawberry.field(description="Opened in the period.")
    resolved: int
    dismissed: int
    median_hours_to_resolve: float | None = strawberry.field(description="Of those resolved in the period.")
    by_type: list[CountType] = strawberry.field(description="New conflicts by type.")
    by_cause: list[CountType]
    by_channel: list[CountType]
    by_partner: list[PartnerCountType]
    listings_judged: int = strawberry.field(
        description="Listings seen in the period that a policy applied to."
    )
    map_compliance_rate: float | None = strawberry.field(description="The share of those within policy.")


def _counts(found: dict[str, int]) -> list[CountType]:
    return [
        CountType(key=k.upper(), count=n) for k, n in sorted(found.items(), key=lambda kv: (-kv[1], kv[0]))
    ]


@strawberry.input
class ConflictFilterInput:
    statuses: list[ConflictStatusEnum] | None = None  # type: ignore[valid-type]
    types: list[ConflictTypeEnum] | None = None  # type: ignore[valid-type]
    causes: list[CauseEnum] | None = None  # type: ignore[valid-type]
    partner_id: strawberry.ID | None = None
    channel: str | None = None
    sku: str | None = None
    severities: list[SeverityEnum] | None = None  # type: ignore[valid-type]
    opened_from: datetime | None = None
    opened_until: datetime | None = None

    def parsed(self) -> service.ConflictFilter:
        return service.ConflictFilter(
            statuses=[str(s) for s in self.statuses or []], types=[str(t) for t in self.types or []],
            causes=[str(c) for c in self.causes or []],
            partner_id=pk_of(self.partner_id, "ChannelPartner") if self.partner_id else None,
            channel=self.channel, sku=self.sku, severities=[str(s) for s in self.severities or []],
            opened_from=self.opened_from, opened_until=self.opened_until,
        )  # fmt: skip


async def load_conflict(info: Info, pk: uuid.UUID) -> ConflictRecord | None:
    try:
        return ConflictRecord.of(await info.context.run(service.get_conflict, pk))
    except InvalidInput:
        return None


@strawberry.type
class ConflictQueries:
    @strawberry.field(
        description="The brand's channel partners, oldest first.",
        extensions=[Needs(Permission.CONFLICTS_READ)],
    )
    async def channel_partners(
        self, info: Info, first: int = 20, after: str | None = None
    ) -> Connection[PartnerType]:
        ctx = info.context
        return await paginate(
            first, after, max_page_size=ctx.settings.max_page_size,
            fetch=lambda limit, cursor: ctx.run(service.partners_page, limit, cursor),
            count=lambda: ctx.run(service.partners_count), node=PartnerType.of,
        )  # fmt: skip

    @strawberry.field(
        description="Price policies (MAP), oldest first.", extensions=[Needs(Permission.CONFLICTS_READ)]
    )
    async def price_policies(
        self, info: Info, sku: str | None = None, first: int = 20, after: str | None = None
    ) -> Connection[PolicyType]:
        ctx = info.context
        return await paginate(
            first, after, max_page_size=ctx.settings.max_page_size,
            fetch=lambda limit, cursor: ctx.run(service.policies_page, limit, cursor, sku),
            count=lambda: ctx.run(service.policies_count, sku), node=PolicyType.of,
        )  # fmt: skip

    @strawberry.field(
        description="Conflicts over [from, to) and MAP compliance of the listings seen then.",
        extensions=[Needs(Permission.CONFLICTS_READ)],
    )
    async def conflict_summary(
        self, info: Info, from_: Annotated[datetime, strawberry.argument(name="from")], to: datetime
    ) -> SummaryType | None:
        ctx = info.context
        try:
            found = await ctx.run(service.summary, from_, to)
        except InvalidInput as error:
            raise BadInput(error.problems[0].message) from None
        partners = await ctx.run(service.partners_of, list(found.by_partner))
        return SummaryType(
            open=found.open, new=found.new, resolved=found.resolved, dismissed=found.dismissed,
            median_hours_to_resolve=found.median_hours_to_resolve, by_type=_counts(found.by_type),
            by_cause=_counts(found.by_cause), by_channel=[CountType(key=k, count=n) for k, n in sorted(found.by_channel.items())],
            by_partner=[
                PartnerCountType(partner=PartnerType.of(partners[i]), count=n)
                for i, n in sorted(found.by_partner.items(), key=lambda kv: -kv[1])
            ],
            listings_judged=found.listings_judged, map_compliance_rate=found.map_compliance,
        )  # fmt: skip

    @strawberry.field(description="Conflicts, oldest first.", extensions=[Needs(Permission.CONFLICTS_READ)])
    async def conflicts(
        self, info: Info, filter: ConflictFilterInput | None = None, first: int = 20, after: str | None = None
    ) -> Connection[ConflictRecord]:
        ctx = info.context
        given = (filter or ConflictFilterInput()).parsed()
        return await paginate(
            first, after, max_page_size=ctx.settings.max_page_size,
            fetch=lambda limit, cursor: ctx.run(service.conflicts_page, given, limit, cursor),
            count=lambda: ctx.run(service.conflicts_count, given), node=ConflictRecord.of,
        )  # fmt: skip


@strawberry.input
class ContactInput:
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    role: str | None = None


@strawberry.input
class ChannelPartnerInput:
    name: str
    level: PartnerLevelEnum  # type: ignore[valid-type]
    channel: str
    authorised: bool
    seller_id: str | None = None
    territories: list[str] = strawberry.field(default_factory=list)
    contacts: list[ContactInput] = strawberry.field(default_factory=list)

    def parsed(self) -> service.PartnerInput:
        return service.PartnerInput(
            name=self.name, level=str(self.level), channel=self.channel, authorised=self.authorised,
            seller_id=self.seller_id, territories=self.territories,
            contacts=[{k: v for k, v in vars(c).items() if v is not None} for c in self.contacts],
        )  # fmt: skip


@strawberry.input
class UpdateChannelPartnerInput:
    id: strawberry.ID
    partner: ChannelPartnerInput


@strawberry.type
class ChannelPartnerPayload:
    partner: PartnerType | None
    user_errors: list[UserError]


@strawberry.input
class PricePolicyInput:
    sku: str
    currency: str
    min_price: int = strawberry.field(description="Minor units of `currency`.")
    valid_from: datetime
    channel: str | None = None
    valid_until: datetime | None = None


@strawberry.type
class PricePolicyPayload:
    policy: PolicyType | None
    user_errors: list[UserError]


@strawberry.input
class PriceExceptionInput:
    policy_id: strawberry.ID
    min_price: int = strawberry.field(
        description="The lowest price allowed meanwhile, in the policy's currency."
    )
    starts_at: datetime
    ends_at: datetime
    reason: str
    partner_ids: list[strawberry.ID] = strawberry.field(default_factory=list)
    channels: list[str] = strawberry.field(default_factory=list)


@strawberry.type
class PriceExceptionPayload:
    exception: ExceptionType | None
    user_errors: list[UserError]


@strawberry.input
class ListingObservationInput:
    channel: str
    sku: str
    seller_id: str
    price: int = strawberry.field(description="Minor units of `currency`.")
    currency: str
    observed_at: datetime
    seller_name: str | None = None
    region: str | None = strawberry.field(default=None, description="ISO 3166-2, e.g. CN-GD.")
    url: str | None = None
    listing_id: str | None = None


@strawberry.input
class RecordListingObservationsInput:
    observations: list[ListingObservationInput]


@strawberry.type
class RecordListingObservationsPayload:
    recorded: int
    user_errors: list[UserError]


@strawberry.type
class ConflictDetectionPayload:
    checked: int = strawberry.field(description="Observations judged in this run.")
    opened: int
    joined: int = strawberry.field(description="Open conflicts that got new evidence.")
    resolved: int = strawberry.field(description="Price conflicts back within policy for the set time.")


@strawberry.input
class TransitionConflictInput:
    id: strawberry.ID
    status: ConflictStatusEnum  # type: ignore[valid-type]
    note: str | None = None
    resolution_strategy: StrategyEnum | None = None  # type: ignore[valid-type]
    resolution: str | None = None


@strawberry.input
class ConflictNoteInput:
    id: strawberry.ID
    note: str


@strawberry.input
class AssignConflictInput:
    id: strawberry.ID
    owner: str | None = strawberry.field(description="Null: nobody.")


@strawberry.input
class EvidenceInput:
    observed_at: datetime
    price: int | None = strawberry.field(default=None, description="Minor units of `currency`.")
    currency: str | None = None
    url: str | None = None
    listing_id: str | None = None
    region: str | None = None
    notes: str | None = None
    attachments: list[str] = strawberry.field(default_factory=list, description="http(s) references.")

    def parsed(self) -> service.EvidenceInput:
        return service.EvidenceInput(
            observed_at=self.observed_at, price=self.price, currency=self.currency, url=self.url,
            listing_id=self.listing_id, region=self.region, notes=self.notes, attachments=self.attachments,
        )  # fmt: skip


@strawberry.input
class RecordConflictInput:
    type: ConflictTypeEnum  # type: ignore[valid-type]
    cause: CauseEnum  # type: ignore[valid-type]
    partner_id: strawberry.ID
    sku: str | None = None
    channel: str | None = strawberry.field(default=None, description="The partner's channel when left out.")
    region: str | None = None
    evidence: list[EvidenceInput] = strawberry.field(default_factory=list)
    owner: str | None = None
    note: str | None = None


@strawberry.input
class AddConflictEvidenceInput:
    id: strawberry.ID
    evidence: list[EvidenceInput]


@strawberry.input
class UpdateConflictInput:
    id: strawberry.ID
    type: ConflictTypeEnum | None = None  # type: ignore[valid-type]
    severity: SeverityEnum | None = strawberry.field(  # type: ignore[valid-type]
        default=strawberry.UNSET,
        description="Override the computed severity; null: back to the computed one.",
    )


@strawberry.input
class ResetPartnerViolationsInput:
    id: strawberry.ID
    reason: str


@strawberry.type
class ConflictPayload:
    conflict: ConflictRecord | None
    user_errors: list[UserError]


async def _conflict(
    info: Info, change: Callable[..., Awaitable[Conflict]], *args: object, **options: object
) -> ConflictPayload:
    try:
        row = await info.context.mutate(change, *args, actor=info.context.principal.subject, **options)
    except InvalidInput as error:
        return ConflictPayload(conflict=None, user_errors=user_errors(error))
    return ConflictPayload(conflict=ConflictRecord.of(row), user_errors=[])


@strawberry.type
class ConflictMutations:
    @strawberry.mutation(extensions=[Needs(Permission.CONFLICTS_MANAGE)])
    async def create_channel_partner(self, info: Info, input: ChannelPartnerInput) -> ChannelPartnerPayload:
        ctx = info.context
        try:
            row = await ctx.mutate(service.create_partner, input.parsed(), actor=ctx.principal.subject)
        except InvalidInput as error:
            return ChannelPartnerPayload(partner=None, user_errors=user_errors(error))
        return ChannelPartnerPayload(partner=PartnerType.of(row), user_errors=[])

    @strawberry.mutation(extensions=[Needs(Permission.CONFLICTS_MANAGE)])
    async def update_channel_partner(
        self, info: Info, input: UpdateChannelPartnerInput
    ) -> ChannelPartnerPayload:
        ctx = info.context
        try:
            row = await ctx.mutate(
                service.update_partner,
                pk_of(input.id, "ChannelPartner"),
                input.partner.parsed(),
                actor=ctx.principal.subject,
            )
        except InvalidInput as error:
            return ChannelPartnerPayload(partner=None, user_errors=user_errors(error))
        return ChannelPartnerPayload(partner=PartnerType.of(row), user_errors=[])

    @strawberry.mutation(extensions=[Needs(Permission.CONFLICTS_MANAGE)])
    async def create_price_policy(self, info: Info, input: PricePolicyInput) -> PricePolicyPayload:
        ctx = info.context
        try:
            row = await ctx.mutate(
                service.create_policy, sku=input.sku, channel=input.channel, currency=input.currency,
                min_price=input.min_price, valid_from=input.valid_from, valid_until=input.valid_until,
                actor=ctx.principal.subject,
            )  # fmt: skip
        except InvalidInput as error:
            return PricePolicyPayload(policy=None, user_errors=user_errors(error))
        return PricePolicyPayload(policy=PolicyType.of(row), user_errors=[])

    @strawberry.mutation(
        description="A promotion: a lower price the policy allows in a window for named partners or channels.",
        extensions=[Needs(Permission.CONFLICTS_MANAGE)],
    )
    async def create_price_exception(self, info: Info, input: PriceExceptionInput) -> PriceExceptionPayload:
        ctx = info.context
        try:
            row = await ctx.mutate(
                service.create_exception, pk_of(input.policy_id, "PricePolicy"), min_price=input.min_price,
                starts_at=input.starts_at, ends_at=input.ends_at,
                partner_ids=[pk_of(p, "ChannelPartner") for p in input.partner_ids], channels=input.channels,
                reason=input.reason, actor=ctx.principal.subject,
            )  # fmt: skip
        except InvalidInput as error:
            return PriceExceptionPayload(exception=None, user_errors=user_errors(error))
        return PriceExceptionPayload(exception=ExceptionType.of(row), user_errors=[])

    @strawberry.mutation(
        description="Listings seen on a channel (up to 500); the next detection judges them.",
        extensions=[Needs(Permission.CONFLICTS_WRITE)],
    )
    async def record_listing_observations(
        self, info: Info, input: RecordListingObservationsInput
    ) -> RecordListingObservationsPayload:
        given = [
            detection.ObservationInput(
                channel=o.channel, sku=o.sku, seller_id=o.seller_id, price=o.price, currency=o.currency,
                observed_at=o.observed_at, seller_name=o.seller_name, region=o.region, url=o.url, listing_id=o.listing_id,
            )
            for o in input.observations
        ]  # fmt: skip
        try:
            recorded = await info.context.mutate(detection.record_observations, given)
        except InvalidInput as error:
            return RecordListingObservationsPayload(recorded=0, user_errors=user_errors(error))
        return RecordListingObservationsPayload(recorded=recorded, user_errors=[])

    @strawberry.mutation(
        description="Judge the listings not yet checked now (the job conflicts.detect does it every 5 minutes).",
        extensions=[Needs(Permission.CONFLICTS_WRITE)],
    )
    async def run_conflict_detection(self, info: Info) -> ConflictDetectionPayload:
        found = await info.context.mutate(detection.detect)
        return ConflictDetectionPayload(
            checked=found.checked, opened=found.opened, joined=found.joined, resolved=found.resolved
        )

    @strawberry.mutation(
        description="Move a conflict along its workflow (resolving needs a strategy and what was done).",
        extensions=[Needs(Permission.CONFLICTS_WRITE)],
    )
    async def transition_conflict(self, info: Info, input: TransitionConflictInput) -> ConflictPayload:
        return await _conflict(
            info, service.transition, pk_of(input.id, "Conflict"), ConflictStatus(input.status), note=input.note,
            strategy=Strategy(input.resolution_strategy) if input.resolution_strategy else None,
            resolution=input.resolution,
        )  # fmt: skip

    @strawberry.mutation(extensions=[Needs(Permission.CONFLICTS_WRITE)])
    async def add_conflict_note(self, info: Info, input: ConflictNoteInput) -> ConflictPayload:
        return await _conflict(info, service.add_note, pk_of(input.id, "Conflict"), input.note)

    @strawberry.mutation(extensions=[Needs(Permission.CONFLICTS_WRITE)])
    async def assign_conflict(self, info: Info, input: AssignConflictInput) -> ConflictPayload:
        return await _conflict(info, service.assign, pk_of(input.id, "Conflict"), input.owner)

    @strawberry.mutation(
        description="A conflict seen by people (poaching, a campaign not run, ...), with its evidence.",
        extensions=[Needs(Permission.CONFLICTS_WRITE)],
    )
    async def record_conflict(self, info: Info, input: RecordConflictInput) -> ConflictPayload:
        return await _conflict(
            info, service.record_conflict, type=ConflictType(input.type), cause=Cause(input.cause),
            partner_id=pk_of(input.partner_id, "ChannelPartner"), sku=input.sku, channel=input.channel,
            region=input.region, evidence=[e.parsed() for e in input.evidence], owner=input.owner, note=input.note,
        )  # fmt: skip

    @strawberry.mutation(extensions=[Needs(Permission.CONFLICTS_WRITE)])
    async def add_conflict_evidence(self, info: Info, input: AddConflictEvidenceInput) -> ConflictPayload:
        return await _conflict(
            info, service.add_evidence, pk_of(input.id, "Conflict"), [e.parsed() for e in input.evidence]
        )

    @strawberry.mutation(
        description="Retype a conflict or override its severity.",
        extensions=[Needs(Permission.CONFLICTS_WRITE)],
    )
    async def update_conflict(self, info: Info, input: UpdateConflictInput) -> ConflictPayload:
        given = input.severity
        return await _conflict(
            info, service.update_conflict, pk_of(input.id, "Conflict"),
            type=ConflictType(input.type) if input.type else None,
            severity=str(given) if given not in (None, strawberry.UNSET) else None,
            clear_severity=given is None,
        )  # fmt: skip

    @strawberry.mutation(
        description="Back to violation level 0, with the reason on record.",
        extensions=[Needs(Permission.CONFLICTS_MANAGE)],
    )
    async def reset_partner_violations(
        self, info: Info, input: ResetPartnerViolationsInput
    ) -> ChannelPartnerPayload:
        ctx = info.context
        try:
            row = await ctx.mutate(
                service.reset_violations,
                pk_of(input.id, "ChannelPartner"),
                input.reason,
                actor=ctx.principal.subject,
            )
        except InvalidInput as error:
            return ChannelPartnerPayload(partner=None, user_errors=user_errors(error))
        return ChannelPartnerPayload(partner=PartnerType.of(row), user_errors=[])
