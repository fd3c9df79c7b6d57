"""Points follow their customer through a merge, and back through an unmerge.

A merge moves what is left of each lot of the merged profile's accounts to the survivor's account
in the same program, lot by lot (so the points keep their expiry), with a transfer entry out and
one in; a debt moves the same way. An unmerge moves back what is left of those lots then: points
spent meanwhile stay spent.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from brandloop.loyalty import ledger, tiers
from brandloop.loyalty.models import Account, EntryKind, EntrySource

ACTOR = "system:merge"
_LOTS = text(
    """
    SELECT id, account_id, remaining, earned_at, available_at, expires_at FROM loyalty_lots
     WHERE id = ANY(:ids) AND remaining > 0 ORDER BY earned_at, id
    """
)
_OPEN_LOTS = text(
    """
    SELECT id, remaining, earned_at, available_at, expires_at FROM loyalty_lots
     WHERE account_id = :account AND remaining > 0 ORDER BY earned_at, id
    """
)


def _transfer(
    source: uuid.UUID, target: uuid.UUID, points: int, batch: str, what: str, lot: Any = None
) -> list[ledger.Posting]:
    """A transfer entry out of `source` and one into `target`; a moved lot keeps its dates."""
    now = datetime.now(UTC)
    out = ledger.Posting(
        account_id=source,
        delta=-points,
        kind=EntryKind.TRANSFER,
        source=EntrySource.MERGE,
        key=f"transfer:{batch}:{what}:out",
        actor=ACTOR,
        effective_at=now,
        source_id=str(target),
        first_lots=[lot.id] if lot else (),
    )
    into = ledger.Posting(
        account_id=target,
        delta=points,
        kind=EntryKind.TRANSFER,
        source=EntrySource.MERGE,
        key=f"transfer:{batch}:{what}:in",
        actor=ACTOR,
        effective_at=now,
        source_id=str(source),
        expires_at=lot.expires_at if lot else None,
        available_at=lot.available_at if lot else None,
        lot_earned_at=lot.earned_at if lot else None,
    )
    return [out, into]


class PointsFollowTheirCustomer:
    name = "loyalty"

    async def move(self, session: AsyncSession, from_id: uuid.UUID, to_id: uuid.UUID) -> list[str]:
        accounts = list(await session.scalars(select(Account).where(Account.customer_id == from_id)))
        if not accounts:
            return []
        targets = await ledger.ensure_accounts(session, [(a.program_id, to_id) for a in accounts])
        await ledger.lock_accounts(session, [a.id for a in accounts] + list(targets.values()))
        batch = uuid.uuid4().hex
        postings: list[ledger.Posting] = []
        moved: list[str] = []
        for account in accounts:
            await session.refresh(account)
            target = targets[(account.program_id, to_id)]
            if account.balance < 0:
                postings += _transfer(target, account.id, -account.balance, batch, f"debt:{account.id}")
                moved.append(f"debt:{account.id}:{target}:{-account.balance}")
            for lot in await session.execute(_OPEN_LOTS, {"account": account.id}):
                postings += _transfer(account.id, target, lot.remaining, batch, f"lot:{lot.id}", lot)
        posted = await ledger.post(session, postings)
        # The lot each transfer formed in the target has the id of its "in" entry.
        moved += [
            f"lot:{posted.ids[p.key]}:{p.source_id}"
            for p in postings
            if p.key.endswith(":in") and ":lot:" in p.key
        ]
        await tiers.upgrade(session, sorted(set(targets.values())))
        return moved

    async def restore(
        self, session: AsyncSession, ids: Sequence[str], from_id: uuid.UUID, to_id: uuid.UUID
    ) -> None:
        batch = uuid.uuid4().hex
        lots = {uuid.UUID(i.split(":")[1]): uuid.UUID(i.split(":")[2]) for i in ids if i.startswith("lot:")}
        debts = [i.split(":")[1:] for i in ids if i.startswith("debt:")]
        postings: list[ledger.Posting] = []
        for lot in await session.execute(_LOTS, {"ids": list(lots)}):
            postings += _transfer(lot.account_id, lots[lot.id], lot.remaining, batch, f"lot:{lot.id}", lot)
        for account, target, points in debts:
            postings += _transfer(
                uuid.UUID(account), uuid.UUID(target), int(points), batch, f"debt:{account}"
            )
        await ledger.post(session, postings)
