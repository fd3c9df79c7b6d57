"""The rewards catalogue, and redeeming points for rewards.

A redemption locks the customer's account first (so two at the same instant queue up), then
checks its idempotency key, the reward (validity, tier, per-customer limit), takes stock with a
conditional UPDATE and spends available points, oldest first. It keeps which lots it took from,
so a cancellation puts the points back into those lots with their expiry.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from brandloop.audit import service as audit
from brandloop.db.base import keyset_page, uuid7
from brandloop.db.session import current_tenant, get_own
from brandloop.errors import InvalidInput, Problem
from brandloop.loyalty import ledger
from brandloop.loyalty.models import (
    Account,
    EntryKind,
    EntrySource,
    Redemption,
    RedemptionStatus,
    Reward,
    RewardKind,
    RewardStatus,
    Tier,
)
from brandloop.loyalty.service import get_program

MAX_DESCRIPTION = 1000
MAX_COST = 10**9
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O or 1/I: codes are read aloud and typed


@dataclass(frozen=True, slots=True)
class RewardInput:
    name: str
    kind: RewardKind
    points_cost: int
    description: str | None = None
    stock: int | None = None
    per_customer_limit: int | None = None
    min_tier_rank: int | None = None
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    status: RewardStatus = RewardStatus.ACTIVE


def _validate(given: RewardInput) -> list[Problem]:
    problems = []
    if not 0 < len(given.name.strip()) <= 100:
        problems.append(Problem("name", "INVALID_NAME", "Give a name of 1 to 100 characters."))
    if given.description is not None and len(given.description) > MAX_DESCRIPTION:
        problems.append(Problem("description", "TOO_LONG", f"At most {MAX_DESCRIPTION} characters."))
    if not 0 < given.points_cost <= MAX_COST:
        problems.append(Problem("pointsCost", "INVALID_POINTS", f"A reward costs 1 to {MAX_COST:,} points."))
    if given.stock is not None and given.stock < 0:
        problems.append(
            Problem("stock", "INVALID_STOCK", "Stock is zero or more (leave it out for no limit).")
        )
    if given.per_customer_limit is not None and given.per_customer_limit <= 0:
        problems.append(
            Problem("perCustomerLimit", "INVALID_LIMIT", "A limit is 1 or more (leave it out for none).")
        )
    if given.min_tier_rank is not None and given.min_tier_rank < 0:
        problems.append(Problem("minTierRank", "INVALID_RANK", "Tier ranks start at 0."))
    if given.valid_from and given.valid_until and given.valid_until <= given.valid_from:
        problems.append(
            Problem("validUntil", "INVALID_PERIOD", "A reward stops being valid after it starts.")
        )
    return problems


def _values(given: RewardInput) -> dict[str, object]:
    return {
        "name": given.name.strip(),
        "kind": given.kind.value,
        "points_cost": given.points_cost,
        "description": given.description,
        "stock": given.stock,
        "per_customer_limit": given.per_customer_limit,
        "min_tier_rank": given.min_tier_rank,
        "valid_until": given.valid_until,
        "status": given.status.value,
    }


async def create_reward(
    session: AsyncSession, program_id: uuid.UUID, given: RewardInput, *, actor: str
) -> Reward:
    await get_program(session, program_id)
    problems = _validate(given)
    if problems:
        raise InvalidInput(*problems)
    reward = Reward(
        tenant_id=current_tenant(session),
        id=uuid7(),
        program_id=program_id,
        valid_from=given.valid_from or datetime.now(UTC),
        **_values(given),
    )
    session.add(reward)
    await session.flush()
    await audit.record(
        session, actor=actor, action="loyalty.reward.create", target_type="LoyaltyReward", target_id=reward.id
    )
    return reward


async def update_reward(
    session: AsyncSession, reward_id: uuid.UUID, given: RewardInput, *, actor: str
) -> Reward:
    reward = await get_own(session, Reward, reward_id, what="reward", lock=True)
    problems = _validate(given)
    if problems:
        raise InvalidInput(*problems)
    for key, value in _values(given).items():
        setattr(reward, key, value)
    if given.valid_from is not None:
        reward.valid_from = given.valid_from
    reward.updated_at = datetime.now(UTC)
    await session.flush()
    await audit.record(
        session, actor=actor, action="loyalty.reward.update", target_type="LoyaltyReward", target_id=reward.id
    )
    return reward


async def rewards_page(
    session: AsyncSession, program_id: uuid.UUID, first: int, after: uuid.UUID | None
) -> list[Reward]:
    return list(
        await session.scalars(
            keyset_page(select(Reward).where(Reward.program_id == program_id), Reward, first, after)
        )
    )


async def rewards_count(session: AsyncSession, program_id: uuid.UUID) -> int:
    return int(
        await session.scalar(select(func.count()).select_from(Reward).where(Reward.program_id == program_id))
        or 0
    )


async def get_rewards(session: AsyncSession, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Reward]:
    return {r.id: r for r in await session.scalars(select(Reward).where(Reward.id.in_(ids)))}


_TAKE_STOCK = text(
    "UPDATE loyalty_rewards SET stock = stock - 1 WHERE id = :id AND stock > 0 RETURNING stock"
)


async def redeem(
    session: AsyncSession, *, customer_id: uuid.UUID, reward_id: uuid.UUID, idempotency_key: str, actor: str
) -> Redemption:
    """Spend points on a reward; the same key again returns the same redemption."""
    problems: list[Problem] = []
    ledger.check_idempotency_key(idempotency_key, problems)
    if problems:
        raise InvalidInput(*problems)
    reward = await get_own(session, Reward, reward_id, what="reward", field="rewardId")
    account = await session.scalar(
        select(Account)
        .where(Account.program_id == reward.program_id, Account.customer_id == customer_id)
        .with_for_update()
    )
    if account is None:
        raise InvalidInput(
            Problem("customerId", "NOT_A_MEMBER", "The customer is not a member of this program.")
        )
    known = await session.scalar(select(Redemption).where(Redemption.idempotency_key == idempotency_key))
    if known is not None:
        if known.account_id != account.id or known.reward_id != reward_id:
            raise InvalidInput(
                Problem(
                    "idempotencyKey", "KEY_REUSED", "This idempotency key was used for a different request."
                )
            )
        return known
    now = datetime.now(UTC)
    if (
        reward.status != RewardStatus.ACTIVE
        or now < reward.valid_from
        or (reward.valid_until and now >= reward.valid_until)
    ):
        raise InvalidInput(Problem("rewardId", "NOT_AVAILABLE", "This reward cannot be redeemed now."))
    if reward.min_tier_rank is not None:
        rank = (
            await session.scalar(select(Tier.rank).where(Tier.id == account.tier_id))
            if account.tier_id
            else None
        )
        if rank is None or rank < reward.min_tier_rank:
            raise InvalidInput(
                Problem("rewardId", "TIER_TOO_LOW", "The customer's tier does not reach this reward.")
            )
    if reward.per_customer_limit is not None:
        redeemed = await session.scalar(
            select(func.count())
            .select_from(Redemption)
            .where(
                Redemption.account_id == account.id,
                Redemption.reward_id == reward_id,
                Redemption.status == RedemptionStatus.ISSUED,
            )
        )
        if (redeemed or 0) >= reward.per_customer_limit:
            raise InvalidInput(
                Problem(
                    "rewardId",
                    "LIMIT_REACHED",
                    f"A customer redeems this at most {reward.per_customer_limit} times.",
                )
            )
    if reward.stock is not None and (await session.execute(_TAKE_STOCK, {"id": reward_id})).first() is None:
        raise InvalidInput(Problem("rewardId", "OUT_OF_STOCK", "This reward is out of stock."))
    redemption_id = uuid7()
    key = f"redeem:{idempotency_key}"
    posted = await ledger.post(
        session,
        [
            ledger.Posting(
                account_id=account.id,
                delta=-reward.points_cost,
                kind=EntryKind.REDEEM,
                source=EntrySource.REDEMPTION,
                source_id=str(redemption_id),
                key=key,
                actor=actor,
                effective_at=now,
                reason=reward.name,
                spend_only_available=True,
            )
        ],
    )
    redemption = Redemption(
        tenant_id=current_tenant(session),
        id=redemption_id,
        account_id=account.id,
        reward_id=reward_id,
        points=reward.points_cost,
        code=_code(),
        status=RedemptionStatus.ISSUED.value,
        idempotency_key=idempotency_key,
        lots=[[str(lot), points] for lot, points in posted.taken.get(key, [])],
        actor=actor,
        created_at=now,
    )
    session.add(redemption)
    await session.flush()
    return redemption


def _code() -> str:
    return "-".join("".join(secrets.choice(CODE_ALPHABET) for _ in range(4)) for _ in range(3))


async def cancel(session: AsyncSession, redemption_id: uuid.UUID, *, reason: str, actor: str) -> Redemption:
    """Cancel a redemption: its points go back into the lots they came from, and stock returns."""
    redemption = await get_own(session, Redemption, redemption_id, what="redemption")
    if not 0 < len(reason.strip()) <= 500:
        raise InvalidInput(Problem("reason", "REASON_REQUIRED", "Say why, in 1 to 500 characters."))
    await session.execute(select(Account.id).where(Account.id == redemption.account_id).with_for_update())
    await session.refresh(redemption, with_for_update=True)
    if redemption.status == RedemptionStatus.CANCELLED:
        return redemption  # cancelling twice changes nothing
    now = datetime.now(UTC)
    await ledger.post(
        session,
        [
            ledger.Posting(
                account_id=redemption.account_id,
                delta=redemption.points,
                kind=EntryKind.REVERSE,
                source=EntrySource.REDEMPTION,
                source_id=str(redemption.id),
                key=f"cancel:{redemption.id}",
                actor=actor,
                effective_at=now,
                reason=reason.strip(),
                restore=[(uuid.UUID(str(lot)), int(points)) for lot, points in redemption.lots],
            )
        ],
    )
    await session.execute(
        update(Reward)
        .where(Reward.id == redemption.reward_id, Reward.stock.is_not(None))
        .values(stock=Reward.stock + 1)
    )
    redemption.status = RedemptionStatus.CANCELLED.value
    redemption.cancelled_at = now
    redemption.cancel_reason = reason.strip()
    await session.flush()
    await audit.record(
        session,
        actor=actor,
        action="loyalty.redemption.cancel",
        target_type="LoyaltyRedemption",
        target_id=redemption.id,
        after={"reason": reason.strip(), "points": redemption.points},
    )
    return redemption


async def redemptions_page(
    session: AsyncSession, account_id: uuid.UUID, first: int, after: uuid.UUID | None
) -> list[Redemption]:
    query = select(Redemption).where(Redemption.account_id == account_id)
    return list(await session.scalars(keyset_page(query, Redemption, first, after)))


async def redemptions_count(session: AsyncSession, account_id: uuid.UUID) -> int:
    query = select(func.count()).select_from(Redemption).where(Redemption.account_id == account_id)
    return int(await session.scalar(query) or 0)
