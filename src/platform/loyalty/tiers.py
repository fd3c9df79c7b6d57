"""Tiers: a ladder per program, qualified on spend and interaction over a rolling window.

A customer qualifies for a tier when, over the program's window, both their qualifying spend
(the reporting-currency total of their valued orders, net of refunds) and their interaction
points (points from events: reviews, referrals, ...) reach its thresholds. Upgrades happen as soon
as a threshold is crossed; a review (`review`, a scheduled job) may lower a tier by one step once
its review date has passed, and only then. Every change is kept in the tier history.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from dateutil.relativedelta import relativedelta
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from brandloop.audit import service as audit
from brandloop.db.base import uuid7
from brandloop.db.session import current_tenant
from brandloop.errors import InvalidInput, Problem
from brandloop.loyalty.models import Account, Tier, TierChange
from brandloop.orders import service as orders

MAX_TIERS = 10
MAX_BENEFITS = 20
MAX_BENEFIT = 200
MAX_MULTIPLIER = Decimal(10)


@dataclass(frozen=True, slots=True)
class TierInput:
    name: str
    spend_threshold: int
    """Minor units of the reporting currency."""
    interaction_threshold: int
    multiplier: Decimal = Decimal(1)
    benefits: Sequence[str] = ()


def _validate(ladder: Sequence[TierInput]) -> list[Problem]:
    problems = []
    if not 0 < len(ladder) <= MAX_TIERS:
        problems.append(Problem("tiers", "INVALID_COUNT", f"Give 1 to {MAX_TIERS} tiers, lowest first."))
    names = [t.name.strip() for t in ladder]
    if len(set(names)) != len(names):
        problems.append(Problem("tiers", "DUPLICATE_NAME", "Give each tier its own name."))
    for n, tier in enumerate(ladder):
        where = f"tiers.{n}"
        if not 0 < len(tier.name.strip()) <= 100:
            problems.append(Problem(f"{where}.name", "INVALID_NAME", "Give a name of 1 to 100 characters."))
        if tier.spend_threshold < 0 or tier.interaction_threshold < 0:
            problems.append(Problem(where, "INVALID_THRESHOLD", "Thresholds are zero or more."))
        if n and (
            tier.spend_threshold < ladder[n - 1].spend_threshold
            or tier.interaction_threshold < ladder[n - 1].interaction_threshold
        ):
            problems.append(
                Problem(
                    where, "THRESHOLDS_NOT_RISING", "A higher tier cannot ask for less than the one below it."
                )
            )
        if not (tier.multiplier.is_finite() and 0 < tier.multiplier <= MAX_MULTIPLIER):
            problems.append(
                Problem(
                    f"{where}.multiplier",
                    "INVALID_MULTIPLIER",
                    f"A multiplier is above 0, at most {MAX_MULTIPLIER}.",
                )
            )
        if len(tier.benefits) > MAX_BENEFITS or any(
            not 0 < len(b.strip()) <= MAX_BENEFIT for b in tier.benefits
        ):
            problems.append(
                Problem(
                    f"{where}.benefits",
                    "INVALID_BENEFITS",
                    f"Up to {MAX_BENEFITS} benefits of 1 to {MAX_BENEFIT} characters each.",
                )
            )
    return problems


async def set_ladder(
    session: AsyncSession, program_id: uuid.UUID, ladder: Sequence[TierInput], *, actor: str
) -> list[Tier]:
    """Make the program's tiers these, lowest first. Tiers are matched by name; a tier some
    customer holds cannot be removed."""
    problems = _validate(ladder)
    if problems:
        raise InvalidInput(*problems)
    current = {t.name: t for t in await ladder_of(session, program_id)}
    wanted = {t.name.strip() for t in ladder}
    removed = [t.id for name, t in current.items() if name not in wanted]
    if removed:
        held = await session.scalar(
            select(func.count()).select_from(Account).where(Account.tier_id.in_(removed))
        )
        if held:
            raise InvalidInput(
                Problem(
                    "tiers", "TIER_IN_USE", "Customers hold a tier missing from the list: keep it, or rename."
                )
            )
        await session.execute(delete(Tier).where(Tier.id.in_(removed)))
    # Ranks are unique: park the kept tiers out of the way before renumbering them.
    await session.execute(update(Tier).where(Tier.program_id == program_id).values(rank=Tier.rank + 1000))
    for rank, given in enumerate(ladder):
        tier = current.get(given.name.strip()) or Tier(
            tenant_id=current_tenant(session), id=uuid7(), program_id=program_id, name=given.name.strip()
        )
        tier.rank = rank
        tier.spend_threshold = given.spend_threshold
        tier.interaction_threshold = given.interaction_threshold
        tier.multiplier = given.multiplier
        tier.benefits = [b.strip() for b in given.benefits]
        session.add(tier)
        await session.flush()
    await audit.record(
        session,
        actor=actor,
        action="loyalty.tiers.set",
        target_type="LoyaltyProgram",
        target_id=program_id,
        after={
            "tiers": [
                {
                    "name": t.name.strip(),
                    "spend_threshold": t.spend_threshold,
                    "interaction_threshold": t.interaction_threshold,
                    "multiplier": str(t.multiplier),
                }
                for t in ladder
            ]
        },
    )
    return await ladder_of(session, program_id)


async def ladder_of(session: AsyncSession, program_id: uuid.UUID) -> list[Tier]:
    return list(await session.scalars(select(Tier).where(Tier.program_id == program_id).order_by(Tier.rank)))


async def get_tiers(session: AsyncSession, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Tier]:
    return {t.id: t for t in await session.scalars(select(Tier).where(Tier.id.in_(ids)))}


# Plain statements, each on its index: accrual runs these inside imports, while the tables grow
# faster than their statistics follow.
_ACCOUNTS = text(
    """
    SELECT a.id, a.program_id, a.customer_id, a.tier_id, a.tier_since, coalesce(t.rank, -1) AS rank,
           p.tier_window_days, p.tier_review_months
      FROM loyalty_accounts a
      JOIN loyalty_programs p ON p.id = a.program_id
      LEFT JOIN loyalty_tiers t ON t.id = a.tier_id
     WHERE a.id = ANY(:ids) AND EXISTS (SELECT FROM loyalty_tiers l WHERE l.program_id = a.program_id)
     ORDER BY a.id
       FOR UPDATE OF a
    """
)
_SPEND = text(
    """
    SELECT o.customer_id, round(sum(v.spend * (o.total - o.refunded) / o.total))
      FROM orders o JOIN loyalty_order_valuations v ON v.program_id = :program AND v.order_id = o.id
     WHERE o.customer_id = ANY(:customers) AND o.status = ANY(:earning) AND o.total > 0 AND o.placed_at > :since
     GROUP BY o.customer_id
    """
)
_INTERACTION = text(
    """
    SELECT account_id, sum(delta) FROM loyalty_ledger
     WHERE account_id = ANY(:ids) AND source = 'event' AND effective_at > :since
     GROUP BY account_id
    """
)
_DUE = text(
    "SELECT id FROM loyalty_accounts WHERE tier_review_at <= :now ORDER BY tier_review_at LIMIT :limit"
)


async def upgrade(
    session: AsyncSession, account_ids: Sequence[uuid.UUID], *, now: datetime | None = None
) -> int:
    """Raise each account to the highest tier it qualifies for now; returns how many rose."""
    return await _evaluate(session, account_ids, now or datetime.now(UTC), review=False)


async def review(session: AsyncSession, *, now: datetime | None = None, limit: int = 5000) -> int:
    """The scheduled review: accounts past their review date fall one tier if they no longer
    qualify for theirs; either way their next review is set. Returns how many were reviewed."""
    now = now or datetime.now(UTC)
    due = list(await session.scalars(_DUE, {"now": now, "limit": limit}))
    await _evaluate(session, due, now, review=True)
    return len(due)


async def _evaluate(
    session: AsyncSession, account_ids: Sequence[uuid.UUID], now: datetime, *, review: bool
) -> int:
    if not account_ids:
        return 0
    accounts = (await session.execute(_ACCOUNTS, {"ids": list(account_ids)})).mappings().all()
    changes: list[TierChange] = []
    unchanged = []  # reviewed and kept: only their next review moves
    for program_id in {a["program_id"] for a in accounts}:
        members = [a for a in accounts if a["program_id"] == program_id]
        since = now - timedelta(days=members[0]["tier_window_days"])
        spend: dict[uuid.UUID, Any] = dict(
            (
                await session.execute(
                    _SPEND,
                    {
                        "program": program_id,
                        "customers": [a["customer_id"] for a in members],
                        "earning": sorted(orders.PAID_STATUSES),
                        "since": since,
                    },
                )
            ).all()
        )
        interaction: dict[uuid.UUID, Any] = dict(
            (await session.execute(_INTERACTION, {"ids": [a["id"] for a in members], "since": since})).all()
        )
        ladder = await ladder_of(session, program_id)
        for account in members:
            change = _settle(
                account,
                ladder,
                int(spend.get(account["customer_id"], 0)),
                int(interaction.get(account["id"], 0)),
                review=review,
            )
            if change is not None:
                changes.append(change)
            elif review:
                unchanged.append(account)
    if unchanged:
        await session.execute(
            _SET_TIERS,
            {
                "ids": [a["id"] for a in unchanged],
                "tiers": [a["tier_id"] for a in unchanged],
                "since": [a["tier_since"] for a in unchanged],
                "review": [now + relativedelta(months=a["tier_review_months"]) for a in unchanged],
            },
        )
    if changes:
        months = {a["id"]: a["tier_review_months"] for a in accounts}
        await session.execute(
            _SET_TIERS,
            {
                "ids": [c.account_id for c in changes],
                "tiers": [c.to_tier_id for c in changes],
                "since": [now] * len(changes),
                "review": [now + relativedelta(months=months[c.account_id]) for c in changes],
            },
        )
        for change in changes:
            change.tenant_id = current_tenant(session)
            change.changed_at = now
        session.add_all(changes)
        await session.flush()
    return len(changes)


_SET_TIERS = text(
    """
    UPDATE loyalty_accounts a SET tier_id = u.tier_id, tier_since = u.since, tier_review_at = u.review
      FROM unnest(CAST(:ids AS uuid[]), CAST(:tiers AS uuid[]), CAST(:since AS timestamptz[]),
                  CAST(:review AS timestamptz[])) AS u(id, tier_id, since, review)
     WHERE a.id = u.id
    """
)


def _settle(
    account: Any, ladder: Sequence[Tier], spend: int, interaction: int, *, review: bool
) -> TierChange | None:
    """The change that brings one account to the tier it should hold, if any."""
    qualified = max(
        (t.rank for t in ladder if spend >= t.spend_threshold and interaction >= t.interaction_threshold),
        default=-1,
    )
    rank = account["rank"]
    if qualified > rank:
        target, reason = qualified, "upgrade"
    elif review and qualified < rank:
        target, reason = rank - 1, "downgrade"  # one step at a time, and only at a review
    else:
        return None
    return TierChange(
        id=uuid7(),
        account_id=account["id"],
        from_tier_id=account["tier_id"],
        to_tier_id=next((t.id for t in ladder if t.rank == target), None),
        reason=reason,
        qualifying_spend=spend,
        interaction_points=interaction,
    )


async def history(session: AsyncSession, account_id: uuid.UUID, limit: int = 100) -> list[TierChange]:
    query = (
        select(TierChange)
        .where(TierChange.account_id == account_id)
        .order_by(TierChange.id.desc())
        .limit(limit)
    )
    return list(await session.scalars(query))
