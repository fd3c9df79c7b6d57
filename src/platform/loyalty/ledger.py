"""The points ledger: every change of points, the lots it forms and consumes, and the books.

The ledger is append-only (the application role may only read and insert it): a balance is the
sum of an account's entries, and a correction is a new entry. Every change of points goes through
`post`, which locks the accounts it touches (so concurrent changes of one account queue up),
skips entries whose idempotency key exists, and keeps the lots and the cached balance with the
entries:
- points earned form a lot, with its expiry and the time it stops being pending; a customer in
  debt (after a reversal) pays the debt first, and only the rest forms a lot;
- points taken away come out of the named lots first (the order's own, for a reversal), then
  the oldest; what no lot covers puts the balance below zero, which only a reversal may do.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from dateutil.relativedelta import relativedelta
from sqlalchemy import ColumnElement, and_, case, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from brandloop.db.base import keyset_page, uuid7
from brandloop.db.session import current_tenant
from brandloop.errors import InvalidInput, Problem
from brandloop.loyalty.models import (
    Account,
    EntryKind,
    EntrySource,
    ExpiryPolicy,
    LedgerEntry,
    Lot,
)

# -- posting ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class Posting:
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
    restore: Sequence[tuple[uuid.UUID, int]] = ()
    """For points given back (a cancelled redemption): the lots to put them back into, instead of
    forming a new lot, so that they keep their expiry."""
    lot_earned_at: datetime | None = None
    """When the points of the lot it forms were first earned (a transfer keeps it); default: effective_at."""


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
class Posted:
    ids: dict[str, uuid.UUID]
    """The entry of every key, written now or before."""
    created: set[str]
    """The keys written now."""
    taken: dict[str, list[tuple[uuid.UUID, int]]]
    """For the keys written now that took points: (lot, points) taken from each lot."""


_LOTS_BY_ID = text(
    "SELECT account_id, id, remaining, earned_at, available_at FROM loyalty_lots WHERE id = ANY(:ids)"
)


async def post(session: AsyncSession, postings: Sequence[Posting]) -> Posted:
    """Write the postings in order, skipping keys written before."""
    if not postings:
        return Posted({}, set(), {})
    accounts = sorted({p.account_id for p in postings})
    balances: dict[uuid.UUID, int] = dict((await session.execute(_LOCK_ACCOUNTS, {"ids": accounts})).all())
    known: dict[str, uuid.UUID] = dict(
        (await session.execute(_KNOWN_KEYS, {"keys": [p.key for p in postings]})).all()
    )
    lots: dict[uuid.UUID, list[_LotState]] = defaultdict(list)
    takers = [p.account_id for p in postings if p.delta < 0]
    if takers:
        for account_id, *state in await session.execute(_OPEN_LOTS, {"ids": takers}):
            lots[account_id].append(_LotState(*state))
    restored = [lot_id for p in postings for lot_id, _ in p.restore]
    if restored:
        loaded = {lot.id for account_lots in lots.values() for lot in account_lots}
        for account_id, *state in await session.execute(_LOTS_BY_ID, {"ids": restored}):
            if state[0] not in loaded:
                lots[account_id].append(_LotState(*state))
    now = datetime.now(UTC)
    entries: list[Posting] = []
    new_lots: list[tuple[uuid.UUID, Posting, int]] = []
    ids: dict[str, uuid.UUID] = {}
    taken: dict[str, list[tuple[uuid.UUID, int]]] = {}
    for posting in postings:
        if posting.key in known or posting.key in ids:
            continue
        entry_id = uuid7()
        balance = balances[posting.account_id]
        if posting.delta > 0:
            # A debt is paid first; what is left forms a lot, or goes back where it was taken from.
            left = posting.delta - max(-balance, 0)
            if left > 0 and posting.restore:
                _restore(lots[posting.account_id], posting.restore, left)
            elif left > 0:
                new_lots.append((entry_id, posting, left))
        else:
            taken[posting.key] = _take(lots[posting.account_id], posting, now)
        balances[posting.account_id] = balance + posting.delta
        entries.append(posting)
        ids[posting.key] = entry_id
    if entries:
        await _write(session, entries, ids, new_lots, lots, balances)
    return Posted(known | ids, set(ids), taken)


def _take(open_lots: list[_LotState], posting: Posting, now: datetime) -> list[tuple[uuid.UUID, int]]:
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
    taken = []
    for lot in ordered:
        if wanted == 0:
            break
        take = min(lot.remaining, wanted)
        if take:
            lot.remaining -= take
            lot.changed = True
            wanted -= take
            taken.append((lot.id, take))
    # Whatever no lot covered puts the balance below zero (callers refuse that where it is not allowed).
    return taken


def _restore(account_lots: list[_LotState], restore: Sequence[tuple[uuid.UUID, int]], points: int) -> None:
    by_id = {lot.id: lot for lot in account_lots}
    for lot_id, amount in restore:
        back = min(amount, points)
        by_id[lot_id].remaining += back
        by_id[lot_id].changed = True
        points -= back


async def _write(
    session: AsyncSession,
    entries: list[Posting],
    ids: dict[str, uuid.UUID],
    new_lots: list[tuple[uuid.UUID, Posting, int]],
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
                "earned": [p.lot_earned_at or p.effective_at for _, p, _ in new_lots],
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


async def lock_accounts(session: AsyncSession, ids: Collection[uuid.UUID]) -> None:
    """Changes of these accounts' points wait for this transaction (in id order: no deadlocks)."""
    await session.execute(_LOCK_ACCOUNTS, {"ids": sorted(ids)})


async def existing_accounts(
    session: AsyncSession, pairs: Sequence[tuple[uuid.UUID, uuid.UUID]]
) -> dict[tuple[uuid.UUID, uuid.UUID], uuid.UUID]:
    """The account of each (program, customer) that has one."""
    parameters = {"programs": [p for p, _ in pairs], "customers": [c for _, c in pairs]}
    rows = await session.execute(_ACCOUNT_IDS, parameters)
    return {(program_id, customer_id): account_id for program_id, customer_id, account_id in rows}


async def ensure_accounts(
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
    return await existing_accounts(session, unique)


def expiry_of(policy: str, period: int | None, earned_at: datetime, zone: ZoneInfo) -> datetime | None:
    """When points earned at `earned_at` expire under the program's policy."""
    if policy == ExpiryPolicy.NONE or period is None:
        return None
    local = earned_at.astimezone(zone)
    if policy == ExpiryPolicy.YEAR_END:
        return datetime(local.year + period, 1, 1, tzinfo=zone).astimezone(UTC)
    # The same day `period` months later, or that month's last day when it is shorter.
    return (local + relativedelta(months=period)).astimezone(UTC)


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
    await lock_accounts(session, {a for a, _ in found})
    remaining: dict[uuid.UUID, int] = dict(
        (await session.execute(_LOT_REMAINING, {"ids": [lot for _, lot in found]})).all()
    )
    postings = [
        Posting(
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
    await post(session, postings)
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


def balance_columns(account_id: Any, cached: Any) -> dict[str, ColumnElement[Any]]:
    """A Balance's fields as SQL over an account's id and cached balance columns (subqueries
    correlated to their table): shared by `balances` and the planned reads."""
    correlated = account_id.table
    pending = func.coalesce(
        select(func.sum(Lot.remaining))
        .where(Lot.account_id == account_id, Lot.available_at > func.now())
        .correlate(correlated)
        .scalar_subquery(),
        0,
    )

    def summed(sign: int, *which: ColumnElement[bool]) -> ColumnElement[Any]:
        return func.coalesce(
            select(func.sum(LedgerEntry.delta) * sign)
            .where(LedgerEntry.account_id == account_id, or_(*which))
            .correlate(correlated)
            .scalar_subquery(),
            0,
        )

    return {
        "total": cached,
        "available": case((cached > 0, func.greatest(cached - pending, 0)), else_=cached),
        "pending": pending,
        "earned": summed(1, LedgerEntry.kind == EntryKind.EARN),
        # Net of cancelled redemptions, which give back through reversals of the redemption.
        "spent": summed(
            -1,
            LedgerEntry.kind == EntryKind.REDEEM,
            and_(LedgerEntry.kind == EntryKind.REVERSE, LedgerEntry.source == EntrySource.REDEMPTION),
        ),
        "expired": summed(-1, LedgerEntry.kind == EntryKind.EXPIRE),
    }


async def balances(session: AsyncSession, account_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Balance]:
    columns = balance_columns(Account.__table__.c.id, Account.__table__.c.balance)
    query = select(Account.id, *(value.label(name) for name, value in columns.items())).where(
        Account.id.in_(account_ids)
    )
    return {
        row.id: Balance(**{name: int(row._mapping[name]) for name in columns})
        for row in await session.execute(query)
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


MAX_IDEMPOTENCY_KEY = 150
"""Room for the prefixes (event:<program id>:) within the ledger's 200 characters."""


def check_idempotency_key(key: str, problems: list[Problem]) -> None:
    """Keys are the caller's; a prefix (adjust:, redeem:, ...) keeps each kind of request apart."""
    if not 0 < len(key) <= MAX_IDEMPOTENCY_KEY or not key.isprintable():
        problems.append(
            Problem(
                "idempotencyKey",
                "INVALID_IDEMPOTENCY_KEY",
                f"Give a key of 1 to {MAX_IDEMPOTENCY_KEY} printable characters, the same on a retry.",
            )
        )
