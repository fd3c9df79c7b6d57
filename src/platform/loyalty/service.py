"""Loyalty programs, their versioned earning rules, enrolment and adjustments.

Points themselves live in the ledger (ledger.py); orders earn through accrual.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from brandloop.audit import service as audit
from brandloop.customers import merges
from brandloop.customers import service as customers
from brandloop.db.base import uuid7
from brandloop.db.session import current_tenant, get_own
from brandloop.errors import InvalidInput, Problem
from brandloop.loyalty import accrual, ledger, transfers
from brandloop.loyalty.models import (
    Account,
    Enrolment,
    EntryKind,
    EntrySource,
    ExpiryPolicy,
    LedgerEntry,
    Program,
    ProgramStatus,
    RuleVersion,
)
from brandloop.loyalty.rules import parse_rules
from brandloop.orders import service as orders
from brandloop.tenancy.service import settings_of

MAX_NAME = 100
MAX_POINTS_NAME = 40
MAX_REASON = 500
MAX_ADJUSTMENT = 10**9
MAX_EXPIRY_MONTHS = 120
MAX_EXPIRY_YEARS = 10
MAX_PENDING_DAYS = 365
MAX_TIER_WINDOW_DAYS = 3 * 366
MAX_PROGRAMS = 20


# -- programs ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProgramInput:
    name: str
    points_name: str
    channels: Sequence[str] = ()
    enrolment: Enrolment = Enrolment.AUTOMATIC
    expiry_policy: ExpiryPolicy = ExpiryPolicy.NONE
    expiry_period: int | None = None
    pending_days: int = 0
    point_cost: Decimal = Decimal(0)
    status: ProgramStatus = ProgramStatus.ACTIVE
    tier_window_days: int = 365
    tier_review_months: int = 12


def _validate_program(given: ProgramInput) -> list[Problem]:
    problems = []
    if not 0 < len(given.name.strip()) <= MAX_NAME:
        problems.append(Problem("name", "INVALID_NAME", f"Give a name of 1 to {MAX_NAME} characters."))
    if not 0 < len(given.points_name.strip()) <= MAX_POINTS_NAME:
        problems.append(
            Problem("pointsName", "INVALID_NAME", f"Name the points in 1 to {MAX_POINTS_NAME} characters.")
        )
    for n, channel in enumerate(given.channels):
        if not orders.CHANNEL.match(channel):
            problems.append(
                Problem(
                    f"channels.{n}", "INVALID_CHANNEL", "A channel key is lower-case letters, digits and _."
                )
            )
    limit = {ExpiryPolicy.MONTHS: MAX_EXPIRY_MONTHS, ExpiryPolicy.YEAR_END: MAX_EXPIRY_YEARS}.get(
        given.expiry_policy
    )
    if limit is None and given.expiry_period is not None:
        problems.append(Problem("expiryPeriod", "INVALID_EXPIRY", "Points that never expire take no period."))
    if limit is not None and not (given.expiry_period is not None and 0 < given.expiry_period <= limit):
        problems.append(Problem("expiryPeriod", "INVALID_EXPIRY", f"Give a period from 1 to {limit}."))
    if not 0 <= given.pending_days <= MAX_PENDING_DAYS:
        problems.append(Problem("pendingDays", "INVALID_PENDING_DAYS", f"Give 0 to {MAX_PENDING_DAYS} days."))
    if not 0 < given.tier_window_days <= MAX_TIER_WINDOW_DAYS:
        problems.append(
            Problem("tierWindowDays", "INVALID_PERIOD", f"Give 1 to {MAX_TIER_WINDOW_DAYS} days.")
        )
    if not 0 < given.tier_review_months <= MAX_EXPIRY_MONTHS:
        problems.append(
            Problem("tierReviewMonths", "INVALID_PERIOD", f"Give 1 to {MAX_EXPIRY_MONTHS} months.")
        )
    if not (given.point_cost.is_finite() and 0 <= given.point_cost < 10**12):
        problems.append(Problem("pointCost", "INVALID_POINT_COST", "A point's cost is zero or more."))
    return problems


def _program_values(given: ProgramInput) -> dict[str, Any]:
    return {
        "name": given.name.strip(),
        "points_name": given.points_name.strip(),
        "channels": sorted(set(given.channels)),
        "enrolment": given.enrolment.value,
        "expiry_policy": given.expiry_policy.value,
        "expiry_period": given.expiry_period,
        "pending_days": given.pending_days,
        "point_cost": given.point_cost,
        "status": given.status.value,
        "tier_window_days": given.tier_window_days,
        "tier_review_months": given.tier_review_months,
    }


async def create_program(session: AsyncSession, given: ProgramInput, *, actor: str) -> Program:
    problems = _validate_program(given)
    count = await session.scalar(select(func.count()).select_from(Program))
    if (count or 0) >= MAX_PROGRAMS:
        problems.append(Problem(None, "TOO_MANY_PROGRAMS", f"A tenant runs at most {MAX_PROGRAMS} programs."))
    await _refuse_taken_name(session, given.name.strip(), None, problems)
    if problems:
        raise InvalidInput(*problems)
    program = Program(tenant_id=current_tenant(session), id=uuid7(), **_program_values(given))
    session.add(program)
    await session.flush()
    await audit.record(
        session,
        actor=actor,
        action="loyalty.program.create",
        target_type="LoyaltyProgram",
        target_id=program.id,
        after=_audited(given),
    )
    return program


async def update_program(
    session: AsyncSession, program_id: uuid.UUID, given: ProgramInput, *, actor: str
) -> Program:
    program = await get_program(session, program_id, lock=True)
    problems = _validate_program(given)
    await _refuse_taken_name(session, given.name.strip(), program_id, problems)
    if problems:
        raise InvalidInput(*problems)
    before = {k: str(getattr(program, k)) for k in _program_values(given)}
    for key, value in _program_values(given).items():
        setattr(program, key, value)
    program.updated_at = datetime.now(UTC)
    await session.flush()
    await audit.record(
        session,
        actor=actor,
        action="loyalty.program.update",
        target_type="LoyaltyProgram",
        target_id=program.id,
        before=before,
        after=_audited(given),
    )
    return program


def _audited(given: ProgramInput) -> dict[str, Any]:
    return {k: v if isinstance(v, int | list | None) else str(v) for k, v in _program_values(given).items()}


async def _refuse_taken_name(
    session: AsyncSession, name: str, program_id: uuid.UUID | None, problems: list[Problem]
) -> None:
    taken = await session.scalar(select(Program.id).where(Program.name == name))
    if taken is not None and taken != program_id:
        problems.append(Problem("name", "NAME_TAKEN", "Another program has this name."))


async def get_program(session: AsyncSession, program_id: uuid.UUID, *, lock: bool = False) -> Program:
    return await get_own(session, Program, program_id, what="program", field="programId", lock=lock)


async def list_programs(session: AsyncSession) -> list[Program]:
    return list(await session.scalars(select(Program).order_by(Program.id)))


async def get_programs(session: AsyncSession, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Program]:
    return {p.id: p for p in await session.scalars(select(Program).where(Program.id.in_(ids)))}


# -- rules ---------------------------------------------------------------------------------------


async def set_rules(
    session: AsyncSession,
    program_id: uuid.UUID,
    raw: dict[str, Any],
    *,
    effective_from: datetime | None,
    actor: str,
) -> RuleVersion:
    """A new version of the program's earning rules, from `effective_from` (default: now) on.

    Versions never change and never start in the past: an order is valued by the version in force
    when it was paid, and what was valued stays valued."""
    await get_program(session, program_id, lock=True)  # one new version at a time
    rules = parse_rules(raw)
    now = datetime.now(UTC)
    start = effective_from or now
    latest = await session.scalar(
        select(RuleVersion).where(RuleVersion.program_id == program_id).order_by(RuleVersion.version.desc())
    )
    if start < now - timedelta(seconds=1):
        raise InvalidInput(
            Problem("effectiveFrom", "IN_THE_PAST", "Rules cannot change the past: give a time from now on.")
        )
    if latest is not None and start <= latest.effective_from:
        raise InvalidInput(
            Problem(
                "effectiveFrom",
                "NOT_AFTER_LATEST",
                f"Version {latest.version} starts at {latest.effective_from.isoformat()}: start after it.",
            )
        )
    version = RuleVersion(
        tenant_id=current_tenant(session),
        program_id=program_id,
        version=(latest.version + 1) if latest else 1,
        effective_from=start,
        rules=rules.to_json(),
        created_by=actor,
    )
    session.add(version)
    await session.flush()
    await audit.record(
        session,
        actor=actor,
        action="loyalty.rules.set",
        target_type="LoyaltyProgram",
        target_id=program_id,
        after={"version": version.version, "effective_from": start.isoformat(), "rules": version.rules},
    )
    return version


async def rule_versions(session: AsyncSession, program_id: uuid.UUID) -> list[RuleVersion]:
    query = select(RuleVersion).where(RuleVersion.program_id == program_id).order_by(RuleVersion.version)
    return list(await session.scalars(query))


async def enrol(session: AsyncSession, program_id: uuid.UUID, customer_id: uuid.UUID) -> Account:
    await get_program(session, program_id)
    if not (await customers.get_customers(session, [customer_id])):
        raise InvalidInput(Problem("customerId", "NOT_FOUND", "No customer of yours has this id."))
    account_id = (await ledger.ensure_accounts(session, [(program_id, customer_id)]))[
        (program_id, customer_id)
    ]
    account = await session.get(Account, (current_tenant(session), account_id))
    assert account is not None
    return account


# -- adjustments --------------------------------------------------------------------------------


async def adjust_points(
    session: AsyncSession,
    *,
    program_id: uuid.UUID,
    customer_id: uuid.UUID,
    points: int,
    reason: str,
    idempotency_key: str,
    actor: str,
) -> LedgerEntry:
    """An admin's correction: adds or takes away points (never below zero), with a reason."""
    problems = []
    if points == 0 or abs(points) > MAX_ADJUSTMENT:
        problems.append(
            Problem("points", "INVALID_POINTS", f"Give a non-zero number up to {MAX_ADJUSTMENT:,}.")
        )
    if not 0 < len(reason.strip()) <= MAX_REASON:
        problems.append(Problem("reason", "REASON_REQUIRED", f"Say why, in 1 to {MAX_REASON} characters."))
    ledger.check_idempotency_key(idempotency_key, problems)
    if problems:
        raise InvalidInput(*problems)
    program = await get_program(session, program_id)
    account = await enrol(session, program_id, customer_id)
    now = datetime.now(UTC)
    zone = ZoneInfo((await settings_of(session)).timezone)
    key = f"adjust:{idempotency_key}"
    posted = await ledger.post(
        session,
        [
            ledger.Posting(
                account_id=account.id,
                delta=points,
                kind=EntryKind.ADJUST,
                source=EntrySource.ADMIN,
                key=key,
                actor=actor,
                effective_at=now,
                reason=reason.strip(),
                expires_at=ledger.expiry_of(program.expiry_policy, program.expiry_period, now, zone)
                if points > 0
                else None,
                spend_only_available=points < 0,
            )
        ],
    )
    entry = await session.get(LedgerEntry, (current_tenant(session), posted.ids[key]))
    assert entry is not None
    if entry.account_id != account.id or entry.delta != points:
        raise InvalidInput(
            Problem("idempotencyKey", "KEY_REUSED", "This idempotency key was used for a different request.")
        )
    if key in posted.created:
        await audit.record(
            session,
            actor=actor,
            action="loyalty.points.adjust",
            target_type="LoyaltyAccount",
            target_id=account.id,
            after={"points": points, "reason": reason.strip(), "entry": str(entry.id)},
        )
    return entry


# -- statistics ------------------------------------------------------------------------------------

ACTIVE_DAYS = 90


@dataclass(frozen=True, slots=True)
class Statistics:
    members: int
    active_members: int
    """Members who earned or redeemed in the last ACTIVE_DAYS days."""
    points_issued: int
    """Earned and granted, net of what refunds and cancellations reversed."""
    points_redeemed: int
    """Spent on rewards, net of cancelled redemptions."""
    points_expired: int
    points_outstanding: int
    """Held by members now (debts not counted)."""
    liability: int
    """Outstanding points at the program's cost per point, in minor units of the reporting currency."""

    @property
    def redemption_rate(self) -> float:
        return self.points_redeemed / self.points_issued if self.points_issued else 0.0


_STATISTICS = text(
    """
    SELECT
      (SELECT count(*) FROM loyalty_accounts WHERE program_id = :program),
      (SELECT count(DISTINCT e.account_id) FROM loyalty_ledger e JOIN loyalty_accounts a ON a.id = e.account_id
        WHERE a.program_id = :program AND e.kind IN ('earn', 'redeem')
          AND e.effective_at > now() - make_interval(days => :active_days)),
      coalesce(sum(e.delta) FILTER (WHERE e.kind = 'earn' OR (e.kind = 'adjust' AND e.delta > 0)
                                      OR (e.kind = 'reverse' AND e.source = 'order')), 0),
      coalesce(-sum(e.delta) FILTER (WHERE e.kind = 'redeem' OR (e.kind = 'reverse' AND e.source = 'redemption')), 0),
      coalesce(-sum(e.delta) FILTER (WHERE e.kind = 'expire'), 0),
      (SELECT coalesce(sum(greatest(balance, 0)), 0) FROM loyalty_accounts WHERE program_id = :program)
    FROM loyalty_ledger e JOIN loyalty_accounts a ON a.id = e.account_id
    WHERE a.program_id = :program
    """
)


async def statistics(session: AsyncSession, program_id: uuid.UUID) -> Statistics:
    program = await get_program(session, program_id)
    row = (await session.execute(_STATISTICS, {"program": program_id, "active_days": ACTIVE_DAYS})).one()
    members, active, issued, redeemed, expired, outstanding = (int(v) for v in row)
    return Statistics(
        members=members,
        active_members=active,
        points_issued=issued,
        points_redeemed=redeemed,
        points_expired=expired,
        points_outstanding=outstanding,
        liability=round(outstanding * program.point_cost),
    )


orders.on_orders_changed(accrual.accrue_orders)
merges.register(transfers.PointsFollowTheirCustomer())
