"""Points for things customers do besides buying: reviews, referrals, birthdays, NPS answers, ..."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from dateutil.relativedelta import relativedelta
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from brandloop.customers import resolution
from brandloop.customers import service as customers
from brandloop.db.session import current_tenant
from brandloop.errors import InvalidInput, Problem
from brandloop.loyalty import ledger, tiers
from brandloop.loyalty.models import (
    Enrolment,
    EntryKind,
    EntrySource,
    LedgerEntry,
    Program,
    ProgramStatus,
    RuleVersion,
)
from brandloop.loyalty.rules import EarningRules, EventKind
from brandloop.tenancy.service import settings_of

FUTURE_SLACK = timedelta(minutes=5)
"""How far ahead of our clock a partner's `occurredAt` may be (clocks differ)."""


@dataclass(frozen=True, slots=True)
class Award:
    program_id: uuid.UUID
    entry: LedgerEntry | None
    skipped: str | None
    """Why the program gave nothing: NO_RULE, NOT_A_MEMBER, CUSTOMER_LIMIT, BUDGET_EXHAUSTED."""


_EARNED_IN_MONTH = text(
    """
    SELECT count(*) FILTER (WHERE e.account_id = :account), coalesce(sum(e.delta), 0)
      FROM loyalty_ledger e JOIN loyalty_accounts a ON a.id = e.account_id
     WHERE a.program_id = :program AND e.source = 'event' AND e.source_id = :kind AND e.kind = 'earn'
       AND e.effective_at >= :since AND e.effective_at < :until
    """
)


async def award(
    session: AsyncSession,
    *,
    customer_id: uuid.UUID,
    kind: EventKind,
    idempotency_key: str,
    occurred_at: datetime,
    referred_customer_id: uuid.UUID | None = None,
    actor: str,
) -> list[Award]:
    """Award the event's points in every active program whose rules (in force when it occurred)
    reward it. The same key again awards nothing new and returns the same entries."""
    problems: list[Problem] = []
    ledger.check_idempotency_key(idempotency_key, problems)
    if occurred_at.tzinfo is None or occurred_at > datetime.now(UTC) + FUTURE_SLACK:
        problems.append(
            Problem("occurredAt", "INVALID_TIME", "Give the time it happened, with its UTC offset.")
        )
    if problems:
        raise InvalidInput(*problems)
    customer = (await customers.get_customers(session, [customer_id])).get(customer_id)
    if customer is None or customer.merged_into_id is not None:
        raise InvalidInput(Problem("customerId", "NOT_FOUND", "No active customer of yours has this id."))
    if kind is EventKind.REFERRAL_CONVERTED:
        await _check_referral(session, customer_id, referred_customer_id)
    zone = ZoneInfo((await settings_of(session)).timezone)
    programs = list(
        await session.scalars(
            select(Program).where(Program.status == ProgramStatus.ACTIVE).order_by(Program.id)
        )
    )
    awards = []
    for program in programs:
        awards.append(
            await _award_in(session, program, customer_id, kind, idempotency_key, occurred_at, zone, actor)
        )
    await tiers.upgrade(session, sorted({a.entry.account_id for a in awards if a.entry is not None}))
    return awards


async def _award_in(
    session: AsyncSession,
    program: Program,
    customer_id: uuid.UUID,
    kind: EventKind,
    idempotency_key: str,
    occurred_at: datetime,
    zone: ZoneInfo,
    actor: str,
) -> Award:
    key = f"event:{program.id}:{idempotency_key}"
    earlier = await session.scalar(select(LedgerEntry).where(LedgerEntry.idempotency_key == key))
    if earlier is not None:
        return Award(program.id, earlier, None)
    version = await session.scalar(
        select(RuleVersion)
        .where(RuleVersion.program_id == program.id, RuleVersion.effective_from <= occurred_at)
        .order_by(RuleVersion.effective_from.desc())
        .limit(1)
    )
    rule = (
        next((r for r in EarningRules.from_json(version.rules).events if r.kind is kind), None)
        if version
        else None
    )
    if version is None or rule is None or rule.points == 0:
        return Award(program.id, None, "NO_RULE")
    accounts = (
        await ledger.ensure_accounts(session, [(program.id, customer_id)])
        if program.enrolment == Enrolment.AUTOMATIC
        else await ledger.existing_accounts(session, [(program.id, customer_id)])
    )
    account_id = accounts.get((program.id, customer_id))
    if account_id is None:
        return Award(program.id, None, "NOT_A_MEMBER")
    if rule.monthly_budget is not None:
        # Awards of one program queue up here, so that two at once cannot both fit the budget.
        await session.execute(select(Program.id).where(Program.id == program.id).with_for_update())
    else:
        await ledger.lock_accounts(session, [account_id])
    local = occurred_at.astimezone(zone)
    since = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    until = since + relativedelta(months=1)
    times, spent = (
        await session.execute(
            _EARNED_IN_MONTH,
            {
                "account": account_id,
                "program": program.id,
                "kind": kind.value,
                "since": since,
                "until": until,
            },
        )
    ).one()
    if rule.per_customer_monthly is not None and times >= rule.per_customer_monthly:
        return Award(program.id, None, "CUSTOMER_LIMIT")
    if rule.monthly_budget is not None and spent + rule.points > rule.monthly_budget:
        return Award(program.id, None, "BUDGET_EXHAUSTED")
    posted = await ledger.post(
        session,
        [
            ledger.Posting(
                account_id=account_id,
                delta=rule.points,
                kind=EntryKind.EARN,
                source=EntrySource.EVENT,
                source_id=kind.value,
                key=key,
                actor=actor,
                effective_at=occurred_at,
                rule_version=version.version,
                expires_at=ledger.expiry_of(program.expiry_policy, program.expiry_period, occurred_at, zone),
            )
        ],
    )
    entry = await session.get(LedgerEntry, (current_tenant(session), posted.ids[key]))
    return Award(program.id, entry, None)


async def _check_referral(session: AsyncSession, referrer: uuid.UUID, referred: uuid.UUID | None) -> None:
    """A referral rewards bringing someone else: not yourself under another profile."""
    if referred is None:
        raise InvalidInput(
            Problem("referredCustomerId", "REQUIRED", "Say which customer the referral brought in.")
        )
    found = await customers.get_customers(session, [referrer, referred])
    other = found.get(referred)
    if other is None:
        raise InvalidInput(Problem("referredCustomerId", "NOT_FOUND", "No customer of yours has this id."))
    me = found[referrer]
    survivors = {me.id, me.merged_into_id} - {None}
    same = referred == referrer or other.merged_into_id in survivors or other.id in survivors
    identities = await resolution.identities_of(session, [referrer, referred])
    mine = {(i.kind, i.value) for i in identities.get(referrer, [])}
    shared = any(
        (i.kind, i.value) in mine for i in identities.get(referred, []) if i.kind in ("email", "phone")
    )
    if same or shared or (me.email and me.email == other.email) or (me.phone and me.phone == other.phone):
        raise InvalidInput(
            Problem(
                "referredCustomerId",
                "SELF_REFERRAL",
                "A customer cannot be rewarded for referring themselves.",
            )
        )
