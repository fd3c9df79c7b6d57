"""Loyalty in GraphQL: programs and their rules, accounts with balances and ledgers, adjustments."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from brandloop.auth.permissions import Permission
from brandloop.errors import InvalidInput
from brandloop.graphql.context import Info
from brandloop.graphql.errors import UserError, user_errors
from brandloop.graphql.permissions import Needs
from brandloop.graphql.relay import BadInput, Connection, Node, global_id, paginate, pk_of
from brandloop.graphql.scalars import MinorUnits
from brandloop.loyalty import events, ledger, rewards, service, tiers
from brandloop.loyalty.models import (
    Account,
    Enrolment,
    EntryKind,
    EntrySource,
    ExpiryPolicy,
    LedgerEntry,
    Program,
    ProgramStatus,
    Redemption,
    RedemptionStatus,
    Reward,
    RewardKind,
    RewardStatus,
    RuleVersion,
    Tier,
    TierChange,
)
from brandloop.loyalty.rules import EarningRules, EventKind, Stacking, Target
from brandloop.loyalty.service import ProgramInput

ProgramStatusEnum = strawberry.enum(ProgramStatus, name="LoyaltyProgramStatus")
EnrolmentEnum = strawberry.enum(Enrolment, name="LoyaltyEnrolment")
ExpiryPolicyEnum = strawberry.enum(ExpiryPolicy, name="LoyaltyExpiryPolicy")
EntryKindEnum = strawberry.enum(EntryKind, name="LoyaltyEntryKind")
EntrySourceEnum = strawberry.enum(EntrySource, name="LoyaltyEntrySource")
TargetEnum = strawberry.enum(Target, name="LoyaltyMultiplierTarget")
StackingEnum = strawberry.enum(Stacking, name="LoyaltyStacking")
EventKindEnum = strawberry.enum(EventKind, name="LoyaltyEventKind")
RewardKindEnum = strawberry.enum(RewardKind, name="LoyaltyRewardKind")
RewardStatusEnum = strawberry.enum(RewardStatus, name="LoyaltyRewardStatus")
RedemptionStatusEnum = strawberry.enum(RedemptionStatus, name="LoyaltyRedemptionStatus")
MAX_EXPIRING_WITHIN_DAYS = 3660


@strawberry.type(name="LoyaltyMultiplier")
class MultiplierType:
    applies_to: TargetEnum  # type: ignore[valid-type]
    value: str
    factor: Decimal


@strawberry.type(name="LoyaltyCampaign")
class CampaignType:
    name: str
    starts_at: datetime
    ends_at: datetime = strawberry.field(description="Exclusive.")
    factor: Decimal
    stacking: StackingEnum | None  # type: ignore[valid-type]
    channels: list[str] = strawberry.field(description="Empty: every channel of the program.")


@strawberry.type(name="LoyaltyEventRule")
class EventRuleType:
    kind: EventKindEnum  # type: ignore[valid-type]
    points: int
    per_customer_monthly: int | None = strawberry.field(description="Times a customer earns it in a month.")
    monthly_budget: int | None = strawberry.field(
        description="Points the whole program gives for it in a month."
    )


@strawberry.type(name="LoyaltyEarningRules", description="See docs/loyalty.md for how they stack.")
class EarningRulesType:
    points_per_unit: Decimal = strawberry.field(
        description="Points per whole unit of the reporting currency."
    )
    multipliers: list[MultiplierType]
    campaigns: list[CampaignType]
    events: list[EventRuleType]
    daily_cap: int | None
    monthly_cap: int | None

    @classmethod
    def of(cls, rules: EarningRules) -> EarningRulesType:
        return cls(
            points_per_unit=rules.points_per_unit,
            multipliers=[
                MultiplierType(applies_to=m.applies_to, value=m.value, factor=m.factor)
                for m in rules.multipliers
            ],
            campaigns=[
                CampaignType(
                    name=c.name,
                    starts_at=c.starts_at,
                    ends_at=c.ends_at,
                    factor=c.factor,
                    stacking=c.stacking,
                    channels=list(c.channels),
                )
                for c in rules.campaigns
            ],
            events=[
                EventRuleType(
                    kind=e.kind,
                    points=e.points,
                    per_customer_monthly=e.per_customer_monthly,
                    monthly_budget=e.monthly_budget,
                )
                for e in rules.events
            ],
            daily_cap=rules.daily_cap,
            monthly_cap=rules.monthly_cap,
        )


@strawberry.type(name="LoyaltyRuleVersion", description="A program's earning rules from `effectiveFrom` on.")
class RuleVersionType:
    version: int
    effective_from: datetime
    created_by: str
    created_at: datetime
    rules: EarningRulesType

    @classmethod
    def of(cls, row: RuleVersion) -> RuleVersionType:
        return cls(
            version=row.version,
            effective_from=row.effective_from,
            created_by=row.created_by,
            created_at=row.created_at,
            rules=EarningRulesType.of(EarningRules.from_json(row.rules)),
        )


@strawberry.type(name="LoyaltyProgram")
class ProgramType(Node):
    pk: strawberry.Private[uuid.UUID]
    name: str
    points_name: str
    status: ProgramStatusEnum  # type: ignore[valid-type]
    channels: list[str] = strawberry.field(description="The channels whose orders earn; empty for all.")
    enrolment: EnrolmentEnum  # type: ignore[valid-type]
    expiry_policy: ExpiryPolicyEnum  # type: ignore[valid-type]
    expiry_period: int | None = strawberry.field(
        description="Months after earning (MONTHS), or which calendar year's end (YEAR_END; 1 = the year earned)."
    )
    pending_days: int = strawberry.field(
        description="Days earned points stay pending before they can be spent."
    )
    point_cost: Decimal = strawberry.field(
        description="What one point costs the brand, in minor units of the reporting currency."
    )
    tier_window_days: int = strawberry.field(description="The rolling window tiers qualify over.")
    tier_review_months: int = strawberry.field(
        description="How long a tier holds before a review may lower it."
    )
    created_at: datetime

    @classmethod
    def of(cls, row: Program) -> ProgramType:
        return cls(
            id=global_id("LoyaltyProgram", row.id),
            pk=row.id,
            name=row.name,
            points_name=row.points_name,
            status=ProgramStatus(row.status),
            channels=list(row.channels),
            enrolment=Enrolment(row.enrolment),
            expiry_policy=ExpiryPolicy(row.expiry_policy),
            expiry_period=row.expiry_period,
            pending_days=row.pending_days,
            point_cost=row.point_cost,
            tier_window_days=row.tier_window_days,
            tier_review_months=row.tier_review_months,
            created_at=row.created_at,
        )

    @strawberry.field(description="Every version of the earning rules, oldest first.")
    async def rule_versions(self, info: Info) -> list[RuleVersionType]:
        rows = await info.context.run(service.rule_versions, self.pk)
        return [RuleVersionType.of(r) for r in rows]

    @strawberry.field(description="The tier ladder, lowest first.")
    async def tiers(self, info: Info) -> list[TierType]:
        rows = await info.context.run(tiers.ladder_of, self.pk)
        return [TierType.of(r) for r in rows]

    @strawberry.field(description="The rewards catalogue, oldest first.")
    async def rewards(self, info: Info, first: int = 20, after: str | None = None) -> Connection[RewardType]:
        ctx = info.context
        return await paginate(
            first,
            after,
            max_page_size=ctx.settings.max_page_size,
            fetch=lambda limit, cursor: ctx.run(rewards.rewards_page, self.pk, limit, cursor),
            count=lambda: ctx.run(rewards.rewards_count, self.pk),
            node=RewardType.of,
        )

    @strawberry.field(description="Members and points, now.", extensions=[Needs(Permission.LOYALTY_READ)])
    async def statistics(self, info: Info) -> StatisticsType:
        found = await info.context.run(service.statistics, self.pk)
        return StatisticsType(
            members=found.members,
            active_members=found.active_members,
            points_issued=found.points_issued,
            points_redeemed=found.points_redeemed,
            points_expired=found.points_expired,
            points_outstanding=found.points_outstanding,
            liability=found.liability,
            redemption_rate=found.redemption_rate,
        )


@strawberry.type(name="LoyaltyProgramStatistics")
class StatisticsType:
    members: int
    active_members: int = strawberry.field(
        description=f"Earned or redeemed in the last {service.ACTIVE_DAYS} days."
    )
    points_issued: int = strawberry.field(description="Earned and granted, net of reversals of orders.")
    points_redeemed: int = strawberry.field(description="Spent on rewards, net of cancelled redemptions.")
    points_expired: int
    points_outstanding: int = strawberry.field(description="Held by members now (debts not counted).")
    liability: MinorUnits = strawberry.field(
        description="Outstanding points at the program's cost per point, minor units of the reporting currency."
    )
    redemption_rate: float = strawberry.field(description="Redeemed / issued.")


@strawberry.type(name="LoyaltyTier")
class TierType:
    id: strawberry.ID
    name: str
    rank: int = strawberry.field(description="0 is the entry tier.")
    spend_threshold: MinorUnits = strawberry.field(
        description="Qualifying spend in the window, reporting currency."
    )
    interaction_threshold: int = strawberry.field(description="Points from events in the window.")
    multiplier: Decimal = strawberry.field(description="Applies to what orders earn while the tier is held.")
    benefits: list[str]

    @classmethod
    def of(cls, row: Tier) -> TierType:
        return cls(
            id=global_id("LoyaltyTier", row.id),
            name=row.name,
            rank=row.rank,
            spend_threshold=MinorUnits(row.spend_threshold),
            interaction_threshold=row.interaction_threshold,
            multiplier=row.multiplier,
            benefits=list(row.benefits),
        )


async def load_tier(info: Info, pk: uuid.UUID) -> TierType | None:
    ctx = info.context

    async def load(ids: list[uuid.UUID]) -> list[TierType | None]:
        found = await ctx.run(tiers.get_tiers, ids)
        return [TierType.of(found[i]) if i in found else None for i in ids]

    return await ctx.loader("loyalty.tier", load).load(pk)


@strawberry.type(name="LoyaltyTierChange")
class TierChangeType:
    row: strawberry.Private[TierChange]
    upgrade: bool
    qualifying_spend: MinorUnits
    interaction_points: int
    changed_at: datetime

    @strawberry.field(name="from")
    async def from_tier(self, info: Info) -> TierType | None:
        return await load_tier(info, self.row.from_tier_id) if self.row.from_tier_id else None

    @strawberry.field(name="to")
    async def to_tier(self, info: Info) -> TierType | None:
        return await load_tier(info, self.row.to_tier_id) if self.row.to_tier_id else None


@strawberry.type(name="LoyaltyReward")
class RewardType(Node):
    pk: strawberry.Private[uuid.UUID]
    name: str
    description: str | None = strawberry.field(description="Plain text as given; render it escaped.")
    kind: RewardKindEnum  # type: ignore[valid-type]
    points_cost: int
    stock: int | None = strawberry.field(description="Left to redeem; null for no limit.")
    per_customer_limit: int | None
    min_tier_rank: int | None = strawberry.field(description="Only customers at this tier rank or above.")
    valid_from: datetime
    valid_until: datetime | None
    status: RewardStatusEnum  # type: ignore[valid-type]

    @classmethod
    def of(cls, row: Reward) -> RewardType:
        return cls(
            id=global_id("LoyaltyReward", row.id),
            pk=row.id,
            name=row.name,
            description=row.description,
            kind=RewardKind(row.kind),
            points_cost=row.points_cost,
            stock=row.stock,
            per_customer_limit=row.per_customer_limit,
            min_tier_rank=row.min_tier_rank,
            valid_from=row.valid_from,
            valid_until=row.valid_until,
            status=RewardStatus(row.status),
        )


async def load_reward(info: Info, pk: uuid.UUID) -> RewardType | None:
    ctx = info.context

    async def load(ids: list[uuid.UUID]) -> list[RewardType | None]:
        found = await ctx.run(rewards.get_rewards, ids)
        return [RewardType.of(found[i]) if i in found else None for i in ids]

    return await ctx.loader("loyalty.reward", load).load(pk)


@strawberry.type(name="LoyaltyRedemption")
class RedemptionType:
    row: strawberry.Private[Redemption]
    id: strawberry.ID
    points: int
    code: str = strawberry.field(description="What the customer shows or types to receive the reward.")
    status: RedemptionStatusEnum  # type: ignore[valid-type]
    redeemed_at: datetime
    cancelled_at: datetime | None
    cancel_reason: str | None

    @classmethod
    def of(cls, row: Redemption) -> RedemptionType:
        return cls(
            row=row,
            id=global_id("LoyaltyRedemption", row.id),
            points=row.points,
            code=row.code,
            status=RedemptionStatus(row.status),
            redeemed_at=row.created_at,
            cancelled_at=row.cancelled_at,
            cancel_reason=row.cancel_reason,
        )

    @strawberry.field
    async def reward(self, info: Info) -> RewardType:
        found = await load_reward(info, self.row.reward_id)
        assert found is not None
        return found


async def load_program(info: Info, pk: uuid.UUID) -> ProgramType | None:
    ctx = info.context

    async def load(ids: list[uuid.UUID]) -> list[ProgramType | None]:
        found = await ctx.run(service.get_programs, ids)
        return [ProgramType.of(found[i]) if i in found else None for i in ids]

    return await ctx.loader("loyalty.program", load).load(pk)


@strawberry.type(name="LoyaltyBalance")
class BalanceType:
    total: int = strawberry.field(
        description="The sum of the ledger. Below zero when a reversal took more than was left: a debt "
        "that later earnings pay first."
    )
    available: int = strawberry.field(description="What can be spent now.")
    pending: int = strawberry.field(description="Earned, but still in the program's pending period.")
    earned: int = strawberry.field(description="Earned from orders and events (before reversals).")
    spent: int = strawberry.field(description="Spent on rewards, net of cancelled redemptions.")
    expired: int


@strawberry.type(name="LoyaltyLedgerEntry", description="One change of points. Entries never change.")
class LedgerEntryType:
    id: strawberry.ID
    points: int = strawberry.field(description="Added (positive) or taken (negative).")
    kind: EntryKindEnum  # type: ignore[valid-type]
    source: EntrySourceEnum  # type: ignore[valid-type]
    source_id: str | None = strawberry.field(description="The order, lot or request that caused it.")
    effective_at: datetime
    expires_at: datetime | None
    rule_version: int | None = strawberry.field(description="The rules version that valued an order.")
    reason: str | None
    actor: str
    recorded_at: datetime

    @classmethod
    def of(cls, row: LedgerEntry) -> LedgerEntryType:
        return cls(
            id=global_id("LoyaltyLedgerEntry", row.id),
            points=row.delta,
            kind=EntryKind(row.kind),
            source=EntrySource(row.source),
            source_id=row.source_id,
            effective_at=row.effective_at,
            expires_at=row.expires_at,
            rule_version=row.rule_version,
            reason=row.reason,
            actor=row.actor,
            recorded_at=row.created_at,
        )


@strawberry.type(name="LoyaltyAccount", description="A customer's membership of one program.")
class AccountType:
    row: strawberry.Private[Account]
    enrolled_at: datetime

    @classmethod
    def of(cls, row: Account) -> AccountType:
        return cls(row=row, enrolled_at=row.enrolled_at)

    @strawberry.field
    async def program(self, info: Info) -> ProgramType:
        program = await load_program(info, self.row.program_id)
        assert program is not None
        return program

    @strawberry.field(description="The tier held now; null before the first one is reached.")
    async def tier(self, info: Info) -> TierType | None:
        return await load_tier(info, self.row.tier_id) if self.row.tier_id else None

    @strawberry.field(description="When a review may lower the tier next.")
    def tier_review_at(self) -> datetime | None:
        return self.row.tier_review_at

    @strawberry.field(description="Tier changes, newest first (the last 100).")
    async def tier_history(self, info: Info) -> list[TierChangeType]:
        rows = await info.context.run(tiers.history, self.row.id)
        return [
            TierChangeType(
                row=r,
                upgrade=r.reason == "upgrade",
                qualifying_spend=MinorUnits(r.qualifying_spend),
                interaction_points=r.interaction_points,
                changed_at=r.changed_at,
            )
            for r in rows
        ]

    @strawberry.field(description="The customer's redemptions in this program, oldest first.")
    async def redemptions(
        self, info: Info, first: int = 20, after: str | None = None
    ) -> Connection[RedemptionType]:
        ctx = info.context
        return await paginate(
            first,
            after,
            max_page_size=ctx.settings.max_page_size,
            fetch=lambda limit, cursor: ctx.run(rewards.redemptions_page, self.row.id, limit, cursor),
            count=lambda: ctx.run(rewards.redemptions_count, self.row.id),
            node=RedemptionType.of,
        )

    @strawberry.field
    async def balance(self, info: Info) -> BalanceType:
        ctx = info.context

        async def load(ids: list[uuid.UUID]) -> list[ledger.Balance]:
            found = await ctx.run(ledger.balances, ids)
            return [found[i] for i in ids]

        b = await ctx.loader("loyalty.balance", load).load(self.row.id)
        return BalanceType(
            total=b.total,
            available=b.available,
            pending=b.pending,
            earned=b.earned,
            spent=b.spent,
            expired=b.expired,
        )

    @strawberry.field(description="Points that expire within the next `within` days.")
    async def points_expiring_soon(self, info: Info, within: int = 30) -> int:
        if not 0 < within <= MAX_EXPIRING_WITHIN_DAYS:
            raise BadInput(f"`within` is 1 to {MAX_EXPIRING_WITHIN_DAYS} days.")
        return await info.context.run(ledger.expiring_soon, self.row.id, timedelta(days=within))

    @strawberry.field(description="The account's ledger, oldest first.")
    async def ledger(
        self, info: Info, first: int = 20, after: str | None = None
    ) -> Connection[LedgerEntryType]:
        ctx = info.context
        return await paginate(
            first,
            after,
            max_page_size=ctx.settings.max_page_size,
            fetch=lambda limit, cursor: ctx.run(ledger.ledger_page, self.row.id, limit, cursor),
            count=lambda: ctx.run(ledger.ledger_count, self.row.id),
            node=LedgerEntryType.of,
        )


async def customer_accounts(info: Info, customer_id: uuid.UUID) -> list[AccountType]:
    """A customer's accounts, by program; the customers of a page share one query."""
    ctx = info.context

    async def load(ids: list[uuid.UUID]) -> list[list[AccountType]]:
        found = await ctx.run(ledger.accounts_of_customers, ids)
        return [[AccountType.of(a) for a in found.get(i, [])] for i in ids]

    return await ctx.loader("customer.loyalty", load).load(customer_id)


@strawberry.type(name="LoyaltyDrift")
class DriftType:
    customer_id: strawberry.ID
    program_id: strawberry.ID
    cached_balance: int
    ledger_balance: int = strawberry.field(description="The sum of the account's entries.")
    lots_remaining: int = strawberry.field(
        description="What the account's lots hold (the balance, if positive)."
    )


@strawberry.type(name="LoyaltyLedgerCheck")
class LedgerCheckType:
    accounts_checked: int
    drifts: list[DriftType] = strawberry.field(
        description="Accounts whose books disagree; empty when all agree."
    )


@strawberry.type
class LoyaltyQueries:
    @strawberry.field(
        description=f"The tenant's loyalty programs (at most {service.MAX_PROGRAMS}), oldest first.",
        extensions=[Needs(Permission.LOYALTY_READ)],
    )
    async def loyalty_programs(self, info: Info) -> list[ProgramType]:
        rows = await info.context.run(service.list_programs)
        return [ProgramType.of(r) for r in rows]

    @strawberry.field(
        description="One program; null when none of yours has this id.",
        extensions=[Needs(Permission.LOYALTY_READ)],
    )
    async def loyalty_program(self, info: Info, id: strawberry.ID) -> ProgramType | None:
        return await load_program(info, pk_of(id, "LoyaltyProgram"))

    @strawberry.field(
        description="Checks every account: cached balance against the sum of its ledger, and its lots "
        "against its balance.",
        extensions=[Needs(Permission.LOYALTY_MANAGE)],
    )
    async def loyalty_ledger_check(self, info: Info) -> LedgerCheckType:
        checked, drifts = await info.context.run(ledger.ledger_check)
        return LedgerCheckType(
            accounts_checked=checked,
            drifts=[
                DriftType(
                    customer_id=global_id("Customer", d.customer_id),
                    program_id=global_id("LoyaltyProgram", d.program_id),
                    cached_balance=d.cached_balance,
                    ledger_balance=d.ledger_balance,
                    lots_remaining=d.lots_remaining,
                )
                for d in drifts
            ],
        )


@strawberry.input(name="LoyaltyProgramInput")
class ProgramInputType:
    name: str
    points_name: str = strawberry.field(description='What the points are called, e.g. "Leaves".')
    channels: list[str] = strawberry.field(default_factory=list, description="Empty: every channel.")
    enrolment: EnrolmentEnum = Enrolment.AUTOMATIC  # type: ignore[valid-type]
    expiry_policy: ExpiryPolicyEnum = ExpiryPolicy.NONE  # type: ignore[valid-type]
    expiry_period: int | None = None
    pending_days: int = 0
    point_cost: Decimal = Decimal(0)
    status: ProgramStatusEnum = ProgramStatus.ACTIVE  # type: ignore[valid-type]
    tier_window_days: int = 365
    tier_review_months: int = 12

    def to_input(self) -> ProgramInput:
        return ProgramInput(
            name=self.name,
            points_name=self.points_name,
            channels=self.channels,
            enrolment=Enrolment(self.enrolment),
            expiry_policy=ExpiryPolicy(self.expiry_policy),
            expiry_period=self.expiry_period,
            pending_days=self.pending_days,
            point_cost=self.point_cost,
            status=ProgramStatus(self.status),
            tier_window_days=self.tier_window_days,
            tier_review_months=self.tier_review_months,
        )


@strawberry.input(name="UpdateLoyaltyProgramInput", description="Every setting, as it should be now.")
class UpdateProgramInputType(ProgramInputType):
    id: strawberry.ID


@strawberry.type
class ProgramPayload:
    program: ProgramType | None
    user_errors: list[UserError]


@strawberry.input(name="LoyaltyMultiplierInput")
class MultiplierInput:
    applies_to: TargetEnum  # type: ignore[valid-type]
    value: str
    factor: Decimal


@strawberry.input(name="LoyaltyCampaignInput")
class CampaignInput:
    name: str
    starts_at: datetime
    ends_at: datetime
    factor: Decimal
    stacking: StackingEnum | None = None  # type: ignore[valid-type]
    channels: list[str] = strawberry.field(default_factory=list)


@strawberry.input(name="LoyaltyEventRuleInput")
class EventRuleInput:
    kind: EventKindEnum  # type: ignore[valid-type]
    points: int
    per_customer_monthly: int | None = None
    monthly_budget: int | None = None


@strawberry.input(name="LoyaltyEarningRulesInput")
class EarningRulesInput:
    points_per_unit: Decimal
    multipliers: list[MultiplierInput] = strawberry.field(default_factory=list)
    campaigns: list[CampaignInput] = strawberry.field(default_factory=list)
    events: list[EventRuleInput] = strawberry.field(default_factory=list)
    daily_cap: int | None = None
    monthly_cap: int | None = None

    def to_raw(self) -> dict[str, Any]:
        """As the rules document, for rules.parse_rules to validate."""
        return {
            "points_per_unit": self.points_per_unit,
            "multipliers": [
                {"applies_to": Target(m.applies_to), "value": m.value, "factor": m.factor}
                for m in self.multipliers
            ],
            "campaigns": [
                {
                    "name": c.name,
                    "starts_at": c.starts_at,
                    "ends_at": c.ends_at,
                    "factor": c.factor,
                    "stacking": Stacking(c.stacking) if c.stacking else None,
                    "channels": c.channels,
                }
                for c in self.campaigns
            ],
            "events": [
                {
                    "kind": EventKind(e.kind),
                    "points": e.points,
                    "per_customer_monthly": e.per_customer_monthly,
                    "monthly_budget": e.monthly_budget,
                }
                for e in self.events
            ],
            "daily_cap": self.daily_cap,
            "monthly_cap": self.monthly_cap,
        }


@strawberry.input(name="SetLoyaltyRulesInput")
class SetRulesInput:
    program_id: strawberry.ID
    rules: EarningRulesInput
    effective_from: datetime | None = strawberry.field(
        default=None, description="Default: now. Never in the past; after the latest version's start."
    )


@strawberry.type
class SetLoyaltyRulesPayload:
    rule_version: RuleVersionType | None
    user_errors: list[UserError]


@strawberry.input(name="EnrolInLoyaltyInput")
class EnrolInput:
    program_id: strawberry.ID
    customer_id: strawberry.ID


@strawberry.type
class LoyaltyAccountPayload:
    account: AccountType | None
    user_errors: list[UserError]


@strawberry.input(name="AdjustPointsInput")
class AdjustPointsInput:
    program_id: strawberry.ID
    customer_id: strawberry.ID
    points: int = strawberry.field(
        description="Positive adds, negative takes (never below what is available)."
    )
    reason: str
    idempotency_key: str = strawberry.field(description="The same on a retry: a replay changes nothing.")


@strawberry.type
class AdjustPointsPayload:
    entry: LedgerEntryType | None
    user_errors: list[UserError]


@strawberry.input(name="LoyaltyTierInput")
class TierInputType:
    name: str
    spend_threshold: MinorUnits = strawberry.field(description="Reporting-currency minor units.")
    interaction_threshold: int = strawberry.field(description="Points from events.")
    multiplier: Decimal = Decimal(1)
    benefits: list[str] = strawberry.field(default_factory=list)


@strawberry.input(
    name="SetLoyaltyTiersInput", description="The whole ladder, lowest first; tiers match by name."
)
class SetTiersInput:
    program_id: strawberry.ID
    tiers: list[TierInputType]


@strawberry.type
class SetLoyaltyTiersPayload:
    tiers: list[TierType] | None
    user_errors: list[UserError]


@strawberry.input(name="LoyaltyRewardInput")
class RewardInputType:
    name: str
    kind: RewardKindEnum  # type: ignore[valid-type]
    points_cost: int
    description: str | None = None
    stock: int | None = strawberry.field(default=None, description="Leave out for no limit.")
    per_customer_limit: int | None = None
    min_tier_rank: int | None = None
    valid_from: datetime | None = strawberry.field(default=None, description="Default: now.")
    valid_until: datetime | None = None
    status: RewardStatusEnum = RewardStatus.ACTIVE  # type: ignore[valid-type]

    def to_input(self) -> rewards.RewardInput:
        return rewards.RewardInput(
            name=self.name,
            kind=RewardKind(self.kind),
            points_cost=self.points_cost,
            description=self.description,
            stock=self.stock,
            per_customer_limit=self.per_customer_limit,
            min_tier_rank=self.min_tier_rank,
            valid_from=self.valid_from,
            valid_until=self.valid_until,
            status=RewardStatus(self.status),
        )


@strawberry.input(name="CreateLoyaltyRewardInput")
class CreateRewardInput(RewardInputType):
    program_id: strawberry.ID


@strawberry.input(name="UpdateLoyaltyRewardInput", description="Every setting, as it should be now.")
class UpdateRewardInput(RewardInputType):
    id: strawberry.ID


@strawberry.type
class RewardPayload:
    reward: RewardType | None
    user_errors: list[UserError]


@strawberry.input(name="RedeemRewardInput")
class RedeemInput:
    customer_id: strawberry.ID
    reward_id: strawberry.ID
    idempotency_key: str = strawberry.field(
        description="The same on a retry: a replay returns the same redemption."
    )


@strawberry.input(name="CancelRedemptionInput")
class CancelRedemptionInput:
    id: strawberry.ID
    reason: str


@strawberry.type
class RedemptionPayload:
    redemption: RedemptionType | None
    user_errors: list[UserError]


@strawberry.input(name="AwardEventPointsInput")
class AwardEventInput:
    customer_id: strawberry.ID
    event_kind: EventKindEnum  # type: ignore[valid-type]
    idempotency_key: str = strawberry.field(description="Your id of the event: a replay awards nothing new.")
    occurred_at: datetime
    referred_customer_id: strawberry.ID | None = strawberry.field(
        default=None, description="For REFERRAL_CONVERTED: the customer the referral brought in."
    )


@strawberry.type(name="LoyaltyEventAward")
class AwardType:
    program: ProgramType
    entry: LedgerEntryType | None
    skipped: str | None = strawberry.field(
        description="Why nothing was awarded: NO_RULE, NOT_A_MEMBER, CUSTOMER_LIMIT or BUDGET_EXHAUSTED."
    )


@strawberry.type
class AwardEventPointsPayload:
    awards: list[AwardType]
    user_errors: list[UserError]


@strawberry.type
class LoyaltyMutations:
    @strawberry.mutation(extensions=[Needs(Permission.LOYALTY_MANAGE)])
    async def create_loyalty_program(self, info: Info, input: ProgramInputType) -> ProgramPayload:
        try:
            row = await info.context.mutate(
                service.create_program, input.to_input(), actor=info.context.principal.subject
            )
        except InvalidInput as error:
            return ProgramPayload(program=None, user_errors=user_errors(error))
        return ProgramPayload(program=ProgramType.of(row), user_errors=[])

    @strawberry.mutation(extensions=[Needs(Permission.LOYALTY_MANAGE)])
    async def update_loyalty_program(self, info: Info, input: UpdateProgramInputType) -> ProgramPayload:
        try:
            row = await info.context.mutate(
                service.update_program,
                pk_of(input.id, "LoyaltyProgram"),
                input.to_input(),
                actor=info.context.principal.subject,
            )
        except InvalidInput as error:
            return ProgramPayload(program=None, user_errors=user_errors(error))
        return ProgramPayload(program=ProgramType.of(row), user_errors=[])

    @strawberry.mutation(
        description="Save a new version of a program's earning rules. Orders are valued by the version "
        "in force when they were paid.",
        extensions=[Needs(Permission.LOYALTY_MANAGE)],
    )
    async def set_loyalty_rules(self, info: Info, input: SetRulesInput) -> SetLoyaltyRulesPayload:
        try:
            row = await info.context.mutate(
                service.set_rules,
                pk_of(input.program_id, "LoyaltyProgram"),
                input.rules.to_raw(),
                effective_from=input.effective_from,
                actor=info.context.principal.subject,
            )
        except InvalidInput as error:
            return SetLoyaltyRulesPayload(rule_version=None, user_errors=user_errors(error))
        return SetLoyaltyRulesPayload(rule_version=RuleVersionType.of(row), user_errors=[])

    @strawberry.mutation(
        description="Enrol a customer (programs with explicit enrolment earn only for enrolled customers).",
        extensions=[Needs(Permission.LOYALTY_WRITE)],
    )
    async def enrol_in_loyalty(self, info: Info, input: EnrolInput) -> LoyaltyAccountPayload:
        try:
            row = await info.context.mutate(
                service.enrol, pk_of(input.program_id, "LoyaltyProgram"), pk_of(input.customer_id, "Customer")
            )
        except InvalidInput as error:
            return LoyaltyAccountPayload(account=None, user_errors=user_errors(error))
        return LoyaltyAccountPayload(account=AccountType.of(row), user_errors=[])

    @strawberry.mutation(
        description="Add or take points by hand, with a reason; audited.",
        extensions=[Needs(Permission.LOYALTY_MANAGE)],
    )
    async def adjust_points(self, info: Info, input: AdjustPointsInput) -> AdjustPointsPayload:
        async def adjust(session: AsyncSession) -> LedgerEntry:
            return await service.adjust_points(
                session,
                program_id=pk_of(input.program_id, "LoyaltyProgram"),
                customer_id=pk_of(input.customer_id, "Customer"),
                points=input.points,
                reason=input.reason,
                idempotency_key=input.idempotency_key,
                actor=info.context.principal.subject,
            )

        try:
            row = await info.context.mutate(adjust)
        except InvalidInput as error:
            return AdjustPointsPayload(entry=None, user_errors=user_errors(error))
        return AdjustPointsPayload(entry=LedgerEntryType.of(row), user_errors=[])

    @strawberry.mutation(extensions=[Needs(Permission.LOYALTY_MANAGE)])
    async def set_loyalty_tiers(self, info: Info, input: SetTiersInput) -> SetLoyaltyTiersPayload:
        ladder = [
            tiers.TierInput(
                name=t.name,
                spend_threshold=t.spend_threshold,
                interaction_threshold=t.interaction_threshold,
                multiplier=t.multiplier,
                benefits=t.benefits,
            )
            for t in input.tiers
        ]
        try:
            rows = await info.context.mutate(
                tiers.set_ladder,
                pk_of(input.program_id, "LoyaltyProgram"),
                ladder,
                actor=info.context.principal.subject,
            )
        except InvalidInput as error:
            return SetLoyaltyTiersPayload(tiers=None, user_errors=user_errors(error))
        return SetLoyaltyTiersPayload(tiers=[TierType.of(r) for r in rows], user_errors=[])

    @strawberry.mutation(extensions=[Needs(Permission.LOYALTY_MANAGE)])
    async def create_loyalty_reward(self, info: Info, input: CreateRewardInput) -> RewardPayload:
        try:
            row = await info.context.mutate(
                rewards.create_reward,
                pk_of(input.program_id, "LoyaltyProgram"),
                input.to_input(),
                actor=info.context.principal.subject,
            )
        except InvalidInput as error:
            return RewardPayload(reward=None, user_errors=user_errors(error))
        return RewardPayload(reward=RewardType.of(row), user_errors=[])

    @strawberry.mutation(extensions=[Needs(Permission.LOYALTY_MANAGE)])
    async def update_loyalty_reward(self, info: Info, input: UpdateRewardInput) -> RewardPayload:
        try:
            row = await info.context.mutate(
                rewards.update_reward,
                pk_of(input.id, "LoyaltyReward"),
                input.to_input(),
                actor=info.context.principal.subject,
            )
        except InvalidInput as error:
            return RewardPayload(reward=None, user_errors=user_errors(error))
        return RewardPayload(reward=RewardType.of(row), user_errors=[])

    @strawberry.mutation(
        description="Spend a customer's available points on a reward: checks balance, stock, limits and tier.",
        extensions=[Needs(Permission.LOYALTY_WRITE)],
    )
    async def redeem_reward(self, info: Info, input: RedeemInput) -> RedemptionPayload:
        async def redeem(session: AsyncSession) -> Redemption:
            return await rewards.redeem(
                session,
                customer_id=pk_of(input.customer_id, "Customer"),
                reward_id=pk_of(input.reward_id, "LoyaltyReward"),
                idempotency_key=input.idempotency_key,
                actor=info.context.principal.subject,
            )

        try:
            row = await info.context.mutate(redeem)
        except InvalidInput as error:
            return RedemptionPayload(redemption=None, user_errors=user_errors(error))
        return RedemptionPayload(redemption=RedemptionType.of(row), user_errors=[])

    @strawberry.mutation(
        description="Cancel a redemption: its points go back with their expiry, and the stock returns.",
        extensions=[Needs(Permission.LOYALTY_MANAGE)],
    )
    async def cancel_redemption(self, info: Info, input: CancelRedemptionInput) -> RedemptionPayload:
        try:
            row = await info.context.mutate(
                rewards.cancel,
                pk_of(input.id, "LoyaltyRedemption"),
                reason=input.reason,
                actor=info.context.principal.subject,
            )
        except InvalidInput as error:
            return RedemptionPayload(redemption=None, user_errors=user_errors(error))
        return RedemptionPayload(redemption=RedemptionType.of(row), user_errors=[])

    @strawberry.mutation(
        description="Points for an event (a review, a converted referral, ...) in every program whose rules "
        "reward it. For partner integrations; idempotent by key.",
        extensions=[Needs(Permission.LOYALTY_WRITE)],
    )
    async def award_event_points(self, info: Info, input: AwardEventInput) -> AwardEventPointsPayload:
        async def award(session: AsyncSession) -> list[events.Award]:
            return await events.award(
                session,
                customer_id=pk_of(input.customer_id, "Customer"),
                kind=EventKind(input.event_kind),
                idempotency_key=input.idempotency_key,
                occurred_at=input.occurred_at,
                referred_customer_id=pk_of(input.referred_customer_id, "Customer")
                if input.referred_customer_id
                else None,
                actor=info.context.principal.subject,
            )

        try:
            found = await info.context.mutate(award)
        except InvalidInput as error:
            return AwardEventPointsPayload(awards=[], user_errors=user_errors(error))
        awards = []
        for a in found:
            program = await load_program(info, a.program_id)
            assert program is not None
            awards.append(
                AwardType(
                    program=program, entry=LedgerEntryType.of(a.entry) if a.entry else None, skipped=a.skipped
                )
            )
        return AwardEventPointsPayload(awards=awards, user_errors=[])
