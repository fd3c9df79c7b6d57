"""Loyalty: programs, versioned rules, accrual from orders, and the points ledger.

The ledger is append-only (the application role may only read and insert it): a balance is the
sum of an account's entries, and a correction is a new entry. Every change of points goes through
`_post`, which locks the accounts it touches (so concurrent changes of one account queue up),
skips entries whose idempotency key exists, and keeps the lots and the cached balance with the
entries:
- points earned form a lot, with its expiry and the time it stops being pending; a customer in
  debt (after a reversal) pays the debt first, and only the rest forms a lot;
- points taken away come out of the named lots first (the order's own, for a reversal), then
  the oldest; what no lot covers puts the balance below zero, which only a reversal may do.
"""

from __future__ import annotations

import enum
import math
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from babel.numbers import get_currency_precision
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from brandloop.audit import service as audit
from brandloop.customers import service as customers
from brandloop.db.base import keyset_page, uuid7
from brandloop.db.session import current_tenant
from brandloop.errors import InvalidInput, Problem
from brandloop.loyalty.models import Account, LedgerEntry, Lot, Program, RuleVersion
from brandloop.loyalty.rules import EarningRules, Line, order_points, parse_rules
from brandloop.orders import service as orders
from brandloop.tenancy.service import settings_of

MAX_NAME = 100
MAX_POINTS_NAME = 40
MAX_REASON = 500
MAX_IDEMPOTENCY_KEY = 200
MAX_ADJUSTMENT = 10**9
MAX_EXPIRY_MONTHS = 120
MAX_EXPIRY_YEARS = 10
MAX_PENDING_DAYS = 365
MAX_PROGRAMS = 20
EARNING_STATUSES = frozenset({"paid", "shipped", "completed", "partially_refunded"})
"""Order statuses that earn; a cancelled or refunded order earns nothing (what it earned is reversed)."""


class ProgramStatus(enum.StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    """Earns nothing new; balances and redemptions stay."""
    CLOSED = "closed"


class Enrolment(enum.StrEnum):
    AUTOMATIC = "automatic"
    """A customer joins with their first earning order."""
    EXPLICIT = "explicit"
    """Only enrolled customers earn."""


class ExpiryPolicy(enum.StrEnum):
    NONE = "none"
    MONTHS = "months"
    """Points expire `period` months after they were earned."""
    YEAR_END = "year_end"
    """Points expire at the end of the `period`th calendar year (1: the year they were earned)."""


class EntryKind(enum.StrEnum):
    EARN = "earn"
    REDEEM = "redeem"
    EXPIRE = "expire"
    REVERSE = "reverse"
    ADJUST = "adjust"
    TRANSFER = "transfer"


class EntrySource(enum.StrEnum):
    ORDER = "order"
    EVENT = "event"
    REDEMPTION = "redemption"
    ADMIN = "admin"
    EXPIRY = "expiry"
    MERGE = "merge"


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
    program = await _program(session, program_id, lock=True)
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


async def _program(session: AsyncSession, program_id: uuid.UUID, *, lock: bool = False) -> Program:
    program = await session.get(Program, (current_tenant(session), program_id), with_for_update=lock)
    if program is None:
        raise InvalidInput(Problem("programId", "NOT_FOUND", "No program of yours has this id."))
    return program


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
    await _program(session, program_id, lock=True)  # one new version at a time
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


# -- posting ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Posting:
    account_id: uuid.UUID
    delta: int
    kind: EntryKind
    source: EntrySource
    key: str
    actor: str
    effective_at: datetime
    source_id: str | None = None
    reason: str | None = None
    rule_version: int | None = None
    expires_at: datetime | None = None
    available_at: datetime | None = None
    first_lots: Sequence[uuid.UUID] = ()
    """Lots to take points from before the oldest ones."""
    spend_only_available: bool = False
    """Refuse (InvalidInput) rather than touch pending points or go below zero."""


@dataclass(slots=True)
class _LotState:
    id: uuid.UUID
    remaining: int
    earned_at: datetime
    available_at: datetime
    changed: bool = False


_LOCK_ACCOUNTS = text("SELECT id, balance FROM loyalty_accounts WHERE id = ANY(:ids) ORDER BY id FOR UPDATE")
_KNOWN_KEYS = text("SELECT idempotency_key, id FROM loyalty_ledger WHERE idempotency_key = ANY(:keys)")
_OPEN_LOTS = text(
    """
    SELECT account_id, id, remaining, earned_at, available_at FROM loyalty_lots
     WHERE account_id = ANY(:ids) AND remaining > 0 ORDER BY earned_at, id
    """
)
_INSERT_ENTRIES = text(
    """
    INSERT INTO loyalty_ledger (tenant_id, id, account_id, delta, kind, source, source_id, idempotency_key,
                                effective_at, expires_at, rule_version, reason, actor)
    SELECT :tenant, * FROM unnest(
        CAST(:ids AS uuid[]), CAST(:accounts AS uuid[]), CAST(:deltas AS bigint[]), CAST(:kinds AS text[]),
        CAST(:sources AS text[]), CAST(:source_ids AS text[]), CAST(:keys AS text[]),
        CAST(:effective AS timestamptz[]), CAST(:expires AS timestamptz[]), CAST(:versions AS int[]),
        CAST(:reasons AS text[]), CAST(:actors AS text[]))
    """
)
_INSERT_LOTS = text(
    """
    INSERT INTO loyalty_lots (tenant_id, id, account_id, points, remaining, earned_at, available_at, expires_at)
    SELECT :tenant, id, account_id, points, points, earned_at, available_at, expires_at FROM unnest(
        CAST(:ids AS uuid[]), CAST(:accounts AS uuid[]), CAST(:points AS bigint[]),
        CAST(:earned AS timestamptz[]), CAST(:available AS timestamptz[]), CAST(:expires AS timestamptz[]))
        AS l(id, account_id, points, earned_at, available_at, expires_at)
    """
)
_UPDATE_LOTS = text(
    """
    UPDATE loyalty_lots l SET remaining = u.remaining
      FROM unnest(CAST(:ids AS uuid[]), CAST(:remaining AS bigint[])) AS u(id, remaining)
     WHERE l.id = u.id
    """
)
_UPDATE_BALANCES = text(
    """
    UPDATE loyalty_accounts a SET balance = u.balance
      FROM unnest(CAST(:ids AS uuid[]), CAST(:balances AS bigint[])) AS u(id, balance)
     WHERE a.id = u.id
    """
)


@dataclass(frozen=True, slots=True)
class _Posted:
    ids: dict[str, uuid.UUID]
    """The entry of every key, written now or before."""
    created: set[str]
    """The keys written now."""


async def _post(session: AsyncSession, postings: Sequence[_Posting]) -> _Posted:
    """Write the postings in order, skipping keys written before."""
    if not postings:
        return _Posted({}, set())
    accounts = sorted({p.account_id for p in postings})
    balances: dict[uuid.UUID, int] = dict((await session.execute(_LOCK_ACCOUNTS, {"ids": accounts})).all())
    known: dict[str, uuid.UUID] = dict(
        (await session.execute(_KNOWN_KEYS, {"keys": [p.key for p in postings]})).all()
    )
    lots: dict[uuid.UUID, list[_LotState]] = defaultdict(list)
    if any(p.delta < 0 for p in postings):
        takers = [p.account_id for p in postings if p.delta < 0]
        for account_id, *state in await session.execute(_OPEN_LOTS, {"ids": takers}):
            lots[account_id].append(_LotState(*state))
    now = datetime.now(UTC)
    entries: list[_Posting] = []
    new_lots: list[tuple[uuid.UUID, _Posting, int]] = []
    ids: dict[str, uuid.UUID] = {}
    for posting in postings:
        if posting.key in known or posting.key in ids:
            continue
        entry_id = uuid7()
        balance = balances[posting.account_id]
        if posting.delta > 0:
            debt = max(-balance, 0)
            if posting.delta > debt:
                new_lots.append((entry_id, posting, posting.delta - debt))
        else:
            _take(lots[posting.account_id], posting, now)
        if posting.spend_only_available and balance + posting.delta < 0:
            raise InvalidInput(Problem("points", "INSUFFICIENT_POINTS", "The balance does not cover this."))
        balances[posting.account_id] = balance + posting.delta
        entries.append(posting)
        ids[posting.key] = entry_id
    if entries:
        await _write(session, entries, ids, new_lots, lots, balances)
    return _Posted(known | ids, set(ids))


def _take(open_lots: list[_LotState], posting: _Posting, now: datetime) -> None:
    """Take -delta points out of the account's lots: the named ones first, then the oldest."""
    wanted = -posting.delta
    first = set(posting.first_lots)
    ordered = [lot for lot in open_lots if lot.id in first] + [
        lot for lot in open_lots if lot.id not in first
    ]
    if posting.spend_only_available:
        ordered = [lot for lot in ordered if lot.available_at <= now]
        if sum(lot.remaining for lot in ordered) < wanted:
            raise InvalidInput(
                Problem("points", "INSUFFICIENT_POINTS", "The available points do not cover this.")
            )
    for lot in ordered:
        if wanted == 0:
            break
        taken = min(lot.remaining, wanted)
        lot.remaining -= taken
        lot.changed = True
        wanted -= taken
    # Whatever no lot covered puts the balance below zero (callers refuse that where it is not allowed).


async def _write(
    session: AsyncSession,
    entries: list[_Posting],
    ids: dict[str, uuid.UUID],
    new_lots: list[tuple[uuid.UUID, _Posting, int]],
    lots: dict[uuid.UUID, list[_LotState]],
    balances: dict[uuid.UUID, int],
) -> None:
    tenant = current_tenant(session)
    await session.execute(
        _INSERT_ENTRIES,
        {
            "tenant": tenant,
            "ids": [ids[p.key] for p in entries],
            "accounts": [p.account_id for p in entries],
            "deltas": [p.delta for p in entries],
            "kinds": [p.kind.value for p in entries],
            "sources": [p.source.value for p in entries],
            "source_ids": [p.source_id for p in entries],
            "keys": [p.key for p in entries],
            "effective": [p.effective_at for p in entries],
            "expires": [p.expires_at for p in entries],
            "versions": [p.rule_version for p in entries],
            "reasons": [p.reason for p in entries],
            "actors": [p.actor for p in entries],
        },
    )
    if new_lots:
        await session.execute(
            _INSERT_LOTS,
            {
                "tenant": tenant,
                "ids": [entry_id for entry_id, _, _ in new_lots],
                "accounts": [p.account_id for _, p, _ in new_lots],
                "points": [points for _, _, points in new_lots],
                "earned": [p.effective_at for _, p, _ in new_lots],
                "available": [p.available_at or p.effective_at for _, p, _ in new_lots],
                "expires": [p.expires_at for _, p, _ in new_lots],
            },
        )
    changed = [lot for account_lots in lots.values() for lot in account_lots if lot.changed]
    if changed:
        await session.execute(
            _UPDATE_LOTS,
            {"ids": [lot.id for lot in changed], "remaining": [lot.remaining for lot in changed]},
        )
    touched = sorted({p.account_id for p in entries})
    await session.execute(
        _UPDATE_BALANCES, {"ids": touched, "balances": [balances[account_id] for account_id in touched]}
    )


# -- accounts --------------------------------------------------------------------------------------

_ENSURE_ACCOUNTS = text(
    """
    INSERT INTO loyalty_accounts (tenant_id, id, program_id, customer_id)
    SELECT :tenant, * FROM unnest(CAST(:ids AS uuid[]), CAST(:programs AS uuid[]), CAST(:customers AS uuid[]))
    ON CONFLICT (tenant_id, program_id, customer_id) DO NOTHING
    """
)
_ACCOUNT_IDS = text(
    """
    SELECT a.program_id, a.customer_id, a.id FROM loyalty_accounts a
      JOIN unnest(CAST(:programs AS uuid[]), CAST(:customers AS uuid[])) AS k(program_id, customer_id)
        ON a.program_id = k.program_id AND a.customer_id = k.customer_id
    """
)


async def _ensure_accounts(
    session: AsyncSession, pairs: Sequence[tuple[uuid.UUID, uuid.UUID]]
) -> dict[tuple[uuid.UUID, uuid.UUID], uuid.UUID]:
    """The account of each (program, customer), enrolling those without one."""
    unique = sorted(set(pairs))
    if not unique:
        return {}
    parameters = {"programs": [p for p, _ in unique], "customers": [c for _, c in unique]}
    await session.execute(
        _ENSURE_ACCOUNTS, {"tenant": current_tenant(session), "ids": [uuid7() for _ in unique], **parameters}
    )
    rows = await session.execute(_ACCOUNT_IDS, parameters)
    return {(program_id, customer_id): account_id for program_id, customer_id, account_id in rows}


async def enrol(session: AsyncSession, program_id: uuid.UUID, customer_id: uuid.UUID) -> Account:
    await _program(session, program_id)
    if not (await customers.get_customers(session, [customer_id])):
        raise InvalidInput(Problem("customerId", "NOT_FOUND", "No customer of yours has this id."))
    account_id = (await _ensure_accounts(session, [(program_id, customer_id)]))[(program_id, customer_id)]
    account = await session.get(Account, (current_tenant(session), account_id))
    assert account is not None
    return account


# -- accrual from orders ---------------------------------------------------------------------------

_ACCRUAL = text(
    """
    SELECT o.id AS order_id, o.customer_id, o.channel, o.status, o.currency, o.total, o.refunded,
           o.placed_at, p.id AS program_id, p.status AS program_status, p.enrolment, p.pending_days,
           p.expiry_policy, p.expiry_period, v.version, v.rules, val.points AS valued,
           val.rule_version AS valued_version, a.id AS account_id,
           coalesce(e.earned, 0) AS earned, coalesce(e.entries, 0) AS entries, e.lots
      FROM orders o
      JOIN loyalty_programs p
        ON p.status <> 'closed' AND (cardinality(p.channels) = 0 OR o.channel = ANY(p.channels))
      LEFT JOIN LATERAL (
        SELECT v.version, v.rules FROM loyalty_rule_versions v
         WHERE v.program_id = p.id AND v.effective_from <= o.placed_at
         ORDER BY v.effective_from DESC LIMIT 1) v ON true
      LEFT JOIN loyalty_order_valuations val ON val.program_id = p.id AND val.order_id = o.id
      LEFT JOIN loyalty_accounts a ON a.program_id = p.id AND a.customer_id = o.customer_id
      -- Across the program's accounts: a merge may have moved the order's points elsewhere.
      LEFT JOIN LATERAL (
        SELECT sum(e.delta) AS earned, count(*) AS entries,
               array_agg(e.id) FILTER (WHERE e.delta > 0 AND e.account_id = a.id) AS lots
          FROM loyalty_ledger e JOIN loyalty_accounts ea ON ea.id = e.account_id AND ea.program_id = p.id
         WHERE e.source = 'order' AND e.source_id = o.id::text) e ON true
     WHERE o.id = ANY(:ids) AND o.customer_id IS NOT NULL
    """
)
_LINES = text(
    "SELECT order_id, sku, category, unit_price * quantity FROM order_lines WHERE order_id = ANY(:ids)"
)
_EARNED_SINCE = text(
    """
    SELECT account_id, effective_at, delta FROM loyalty_ledger
     WHERE account_id = ANY(:ids) AND kind = 'earn' AND source = 'order' AND effective_at >= :since
    """
)
_INSERT_VALUATIONS = text(
    """
    INSERT INTO loyalty_order_valuations (tenant_id, program_id, order_id, points, uncapped_points, rule_version)
    SELECT :tenant, * FROM unnest(CAST(:programs AS uuid[]), CAST(:orders AS uuid[]),
                                  CAST(:points AS bigint[]), CAST(:uncapped AS bigint[]), CAST(:versions AS int[]))
    """
)


@dataclass(slots=True)
class _Caps:
    """Points earned from orders per account and day / month of the tenant, as valuing goes on."""

    zone: ZoneInfo
    daily: dict[tuple[uuid.UUID, str], int] = field(default_factory=lambda: defaultdict(int))
    monthly: dict[tuple[uuid.UUID, str], int] = field(default_factory=lambda: defaultdict(int))

    def add(self, account_id: uuid.UUID, at: datetime, points: int) -> None:
        local = at.astimezone(self.zone)
        self.daily[(account_id, local.strftime("%Y-%m-%d"))] += points
        self.monthly[(account_id, local.strftime("%Y-%m"))] += points

    def room(self, rules: EarningRules, account_id: uuid.UUID, at: datetime) -> int | None:
        local = at.astimezone(self.zone)
        rooms = []
        if rules.daily_cap is not None:
            rooms.append(rules.daily_cap - self.daily[(account_id, local.strftime("%Y-%m-%d"))])
        if rules.monthly_cap is not None:
            rooms.append(rules.monthly_cap - self.monthly[(account_id, local.strftime("%Y-%m"))])
        return max(min(rooms), 0) if rooms else None


async def accrue_orders(session: AsyncSession, order_ids: Sequence[uuid.UUID]) -> None:
    """Bring the points of these orders to what they should be now, in every program they earn in.

    An order is valued once, when first seen paid, by the rules in force when it was paid (its
    placed time: channels report payment with the order), capped by the customer's daily and
    monthly caps. From then on it is worth valued x (total - refunded) / total while it earns,
    and nothing once cancelled or refunded: the difference to what it holds is posted, so running
    this twice changes nothing and a partial refund reverses proportionally."""
    if not order_ids:
        return
    rows = (await session.execute(_ACCRUAL, {"ids": list(order_ids)})).mappings().all()
    if not rows:
        return
    # A paused program values nothing new, but still reverses what its orders earned.
    valued = await _value(
        session,
        [
            r
            for r in rows
            if r["valued"] is None and _earns(r) and r["program_status"] == ProgramStatus.ACTIVE
        ],
    )
    accounts = await _ensure_accounts(
        session,
        [
            (r["program_id"], r["customer_id"])
            for r in rows
            if r["account_id"] is None and r["enrolment"] == Enrolment.AUTOMATIC and _target(r, valued) > 0
        ],
    )
    settings = await settings_of(session)
    zone = ZoneInfo(settings.timezone)
    now = datetime.now(UTC)
    postings = []
    for r in rows:
        account_id = r["account_id"] or accounts.get((r["program_id"], r["customer_id"]))
        delta = _target(r, valued) - r["earned"]
        if account_id is None or delta == 0:
            continue
        earning = delta > 0
        effective = r["placed_at"] if earning else now
        version = valued.get((r["program_id"], r["order_id"]), (0, r["valued_version"]))[1]
        postings.append(
            _Posting(
                account_id=account_id,
                delta=delta,
                kind=EntryKind.EARN if earning else EntryKind.REVERSE,
                source=EntrySource.ORDER,
                source_id=str(r["order_id"]),
                key=f"order:{r['program_id']}:{r['order_id']}:{r['entries'] + 1}",
                actor="system:accrual",
                effective_at=effective,
                rule_version=version,
                reason=None if earning else f"order {r['status']}",
                expires_at=expiry_of(r["expiry_policy"], r["expiry_period"], effective, zone)
                if earning
                else None,
                available_at=effective + timedelta(days=r["pending_days"]) if earning else None,
                first_lots=r["lots"] or (),
            )
        )
    await _post(session, postings)


def _earns(row: Any) -> bool:
    return row["status"] in EARNING_STATUSES and row["total"] > 0


def _target(row: Any, valued: dict[tuple[uuid.UUID, uuid.UUID], tuple[int, int]]) -> int:
    """What the order should hold now in the row's program."""
    points = row["valued"]
    if points is None:
        points = valued.get((row["program_id"], row["order_id"]), (0, 0))[0]
    if not _earns(row) or points == 0:
        return 0
    net = max(row["total"] - row["refunded"], 0)
    return math.floor(points * net / row["total"])


async def _value(
    session: AsyncSession, rows: Sequence[Any]
) -> dict[tuple[uuid.UUID, uuid.UUID], tuple[int, int]]:
    """Value the orders not valued yet: (points, rule version) by (program, order), and record it.

    An order paid before its program had rules, or in a currency without a rate for its day,
    earns nothing."""
    rows = [r for r in rows if r["version"] is not None]
    if not rows:
        return {}
    order_rows = {r["order_id"]: r for r in rows}
    stored = await orders.get_orders(session, list(order_rows))
    converted = await orders.reporting_totals(session, list(stored.values()))
    lines: dict[uuid.UUID, list[Line]] = defaultdict(list)
    for order_id, sku, category, amount in await session.execute(_LINES, {"ids": list(order_rows)}):
        lines[order_id].append(Line(sku, category, amount))
    settings = await settings_of(session)
    caps = _Caps(ZoneInfo(settings.timezone))
    account_ids = [r["account_id"] for r in rows if r["account_id"] is not None]
    if account_ids:
        since = min(r["placed_at"] for r in rows) - timedelta(days=32)
        for account_id, at, points in await session.execute(
            _EARNED_SINCE, {"ids": account_ids, "since": since}
        ):
            caps.add(account_id, at, points)
    exponent = Decimal(10) ** get_currency_precision(settings.reporting_currency)
    valued: dict[tuple[uuid.UUID, uuid.UUID], tuple[int, int]] = {}
    uncapped: dict[tuple[uuid.UUID, uuid.UUID], int] = {}
    for r in sorted(rows, key=lambda r: (r["placed_at"], r["order_id"])):
        total = converted.get(r["order_id"])
        if total is None:
            continue
        rules = EarningRules.from_json(r["rules"])
        raw = order_points(
            rules,
            spend=Decimal(total.amount) / exponent,
            channel=r["channel"],
            paid_at=r["placed_at"],
            lines=lines[r["order_id"]],
        )
        # Caps count per customer account; a customer without one yet has earned nothing so far.
        cap_key = r["account_id"] or r["customer_id"]
        room = caps.room(rules, cap_key, r["placed_at"])
        points = raw if room is None else min(raw, room)
        key = (r["program_id"], r["order_id"])
        valued[key] = (points, r["version"])
        uncapped[key] = raw
        net = max(r["total"] - r["refunded"], 0)
        caps.add(cap_key, r["placed_at"], math.floor(points * net / r["total"]))
    if valued:
        await session.execute(
            _INSERT_VALUATIONS,
            {
                "tenant": current_tenant(session),
                "programs": [p for p, _ in valued],
                "orders": [o for _, o in valued],
                "points": [points for points, _ in valued.values()],
                "uncapped": [uncapped[k] for k in valued],
                "versions": [version for _, version in valued.values()],
            },
        )
    return valued


orders.on_orders_changed(accrue_orders)


def expiry_of(policy: str, period: int | None, earned_at: datetime, zone: ZoneInfo) -> datetime | None:
    """When points earned at `earned_at` expire under the program's policy."""
    if policy == ExpiryPolicy.NONE or period is None:
        return None
    local = earned_at.astimezone(zone)
    if policy == ExpiryPolicy.YEAR_END:
        return datetime(local.year + period, 1, 1, tzinfo=zone).astimezone(UTC)
    month = local.month - 1 + period
    year, month = local.year + month // 12, month % 12 + 1
    day = min(local.day, _days_in_month(year, month))
    return local.replace(year=year, month=month, day=day).astimezone(UTC)


def _days_in_month(year: int, month: int) -> int:
    following = datetime(year + month // 12, month % 12 + 1, 1)
    return (following - timedelta(days=1)).day


# -- adjustments, expiry ---------------------------------------------------------------------------


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
    _check_key(idempotency_key, problems)
    if problems:
        raise InvalidInput(*problems)
    program = await _program(session, program_id)
    account = await enrol(session, program_id, customer_id)
    now = datetime.now(UTC)
    zone = ZoneInfo((await settings_of(session)).timezone)
    key = f"adjust:{idempotency_key}"
    posted = await _post(
        session,
        [
            _Posting(
                account_id=account.id,
                delta=points,
                kind=EntryKind.ADJUST,
                source=EntrySource.ADMIN,
                key=key,
                actor=actor,
                effective_at=now,
                reason=reason.strip(),
                expires_at=expiry_of(program.expiry_policy, program.expiry_period, now, zone)
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


def _check_key(key: str, problems: list[Problem]) -> None:
    if not 0 < len(key) <= MAX_IDEMPOTENCY_KEY - 20 or not key.isprintable():
        problems.append(
            Problem(
                "idempotencyKey",
                "INVALID_IDEMPOTENCY_KEY",
                f"Give a key of 1 to {MAX_IDEMPOTENCY_KEY - 20} printable characters, the same on a retry.",
            )
        )


_EXPIRED_LOTS = text(
    """
    SELECT account_id, id FROM loyalty_lots
     WHERE expires_at <= :now AND remaining > 0 AND expires_at IS NOT NULL
     ORDER BY expires_at, id LIMIT :limit
    """
)
_LOT_REMAINING = text("SELECT id, remaining FROM loyalty_lots WHERE id = ANY(:ids)")


async def expire_points(session: AsyncSession, *, now: datetime | None = None, limit: int = 5000) -> int:
    """Expire what is left of every lot past its expiry (up to `limit` lots); returns how many.

    Safe to run again and concurrently: a lot's expiry has one idempotency key, and the accounts
    are locked before the remaining points are read."""
    now = now or datetime.now(UTC)
    found = (await session.execute(_EXPIRED_LOTS, {"now": now, "limit": limit})).all()
    if not found:
        return 0
    # Lock first, then read what is left: a redemption may have spent some meanwhile.
    await session.execute(_LOCK_ACCOUNTS, {"ids": sorted({a for a, _ in found})})
    remaining: dict[uuid.UUID, int] = dict(
        (await session.execute(_LOT_REMAINING, {"ids": [lot for _, lot in found]})).all()
    )
    postings = [
        _Posting(
            account_id=account_id,
            delta=-remaining[lot_id],
            kind=EntryKind.EXPIRE,
            source=EntrySource.EXPIRY,
            source_id=str(lot_id),
            key=f"expire:{lot_id}",
            actor="system:expiry",
            effective_at=now,
            first_lots=[lot_id],
        )
        for account_id, lot_id in found
        if remaining[lot_id] > 0
    ]
    await _post(session, postings)
    return len(postings)


# -- reading ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Balance:
    total: int
    """The sum of the ledger; below zero when a reversal exceeded what was left (a debt)."""
    available: int
    pending: int
    earned: int
    spent: int
    expired: int


_BALANCES = text(
    """
    SELECT a.id, a.balance,
           coalesce((SELECT sum(l.remaining) FROM loyalty_lots l
                      WHERE l.account_id = a.id AND l.available_at > :now), 0) AS pending,
           coalesce(e.earned, 0), coalesce(e.spent, 0), coalesce(e.expired, 0)
      FROM loyalty_accounts a
      LEFT JOIN LATERAL (
        SELECT sum(delta) FILTER (WHERE kind = 'earn') AS earned,
               -sum(delta) FILTER (WHERE kind = 'redeem') AS spent,
               -sum(delta) FILTER (WHERE kind = 'expire') AS expired
          FROM loyalty_ledger WHERE account_id = a.id) e ON true
     WHERE a.id = ANY(:ids)
    """
)


async def balances(session: AsyncSession, account_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Balance]:
    rows = await session.execute(_BALANCES, {"ids": list(account_ids), "now": datetime.now(UTC)})
    return {
        account_id: Balance(
            total=total,
            available=max(total - pending, 0) if total > 0 else total,
            pending=pending,
            earned=earned,
            spent=spent,
            expired=expired,
        )
        for account_id, total, pending, earned, spent, expired in rows
    }


async def accounts_of_customers(
    session: AsyncSession, customer_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[Account]]:
    found: dict[uuid.UUID, list[Account]] = defaultdict(list)
    query = select(Account).where(Account.customer_id.in_(customer_ids)).order_by(Account.program_id)
    for account in await session.scalars(query):
        found[account.customer_id].append(account)
    return found


async def ledger_page(
    session: AsyncSession, account_id: uuid.UUID, first: int, after: uuid.UUID | None
) -> list[LedgerEntry]:
    query = select(LedgerEntry).where(LedgerEntry.account_id == account_id)
    return list(await session.scalars(keyset_page(query, LedgerEntry, first, after)))


async def ledger_count(session: AsyncSession, account_id: uuid.UUID) -> int:
    query = select(func.count()).select_from(LedgerEntry).where(LedgerEntry.account_id == account_id)
    return int(await session.scalar(query) or 0)


async def expiring_soon(session: AsyncSession, account_id: uuid.UUID, within: timedelta) -> int:
    now = datetime.now(UTC)
    query = select(func.coalesce(func.sum(Lot.remaining), 0)).where(
        Lot.account_id == account_id, Lot.expires_at > now, Lot.expires_at <= now + within
    )
    return int(await session.scalar(query) or 0)


@dataclass(frozen=True, slots=True)
class Drift:
    account_id: uuid.UUID
    customer_id: uuid.UUID
    program_id: uuid.UUID
    cached_balance: int
    ledger_balance: int
    lots_remaining: int


_DRIFT = text(
    """
    SELECT a.id, a.customer_id, a.program_id, a.balance, coalesce(e.total, 0), coalesce(l.remaining, 0)
      FROM loyalty_accounts a
      LEFT JOIN (SELECT account_id, sum(delta) AS total FROM loyalty_ledger GROUP BY account_id) e
        ON e.account_id = a.id
      LEFT JOIN (SELECT account_id, sum(remaining) AS remaining FROM loyalty_lots GROUP BY account_id) l
        ON l.account_id = a.id
     WHERE a.balance <> coalesce(e.total, 0) OR greatest(a.balance, 0) <> coalesce(l.remaining, 0)
     ORDER BY a.id
    """
)


async def ledger_check(session: AsyncSession) -> tuple[int, list[Drift]]:
    """Every account whose cached balance differs from its ledger's sum, or whose lots do not add
    up to its balance; with the number of accounts checked."""
    checked = await session.scalar(select(func.count()).select_from(Account))
    drifts = [Drift(*row) for row in await session.execute(_DRIFT)]
    return int(checked or 0), drifts
