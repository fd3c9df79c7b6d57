"""Merging profiles, and undoing it exactly.

A merge moves everything of the merged profile to the survivor in one transaction: identities,
tags, consents, and what other domains keep per customer (orders now, loyalty later). Those domains take
part by registering a MergeParticipant when their service module is imported, so this module
needs none of them. The merged profile stays, pointing at its survivor, and the merge record
lists every id that moved: an unmerge moves exactly those back.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from brandloop.audit import service as audit
from brandloop.customers.identities import LIMITS, IdentityKind
from brandloop.customers.models import Customer, CustomerIdentity, CustomerMerge
from brandloop.db.session import current_tenant
from brandloop.errors import InvalidInput, Problem

MAX_MERGED_PER_CALL = 20
MANUAL = "manual"


class MergeParticipant(Protocol):
    """A domain that keeps rows per customer and moves them with a merge."""

    name: str

    async def move(self, session: AsyncSession, from_id: uuid.UUID, to_id: uuid.UUID) -> list[str]:
        """Reassign the rows of `from_id` to `to_id`; returns their ids, to move them back."""
        ...

    async def restore(
        self, session: AsyncSession, ids: Sequence[str], from_id: uuid.UUID, to_id: uuid.UUID
    ) -> None:
        """Move the rows with these ids from `from_id` back to `to_id`."""
        ...


_participants: dict[str, MergeParticipant] = {}


def register(participant: MergeParticipant) -> None:
    _participants[participant.name] = participant


_MOVE_IDENTITIES = text(
    "UPDATE customer_identities SET customer_id = :to_id WHERE customer_id = :from_id RETURNING id"
)
_RESTORE_IDENTITIES = text(
    "UPDATE customer_identities SET customer_id = :to_id WHERE customer_id = :from_id AND id = ANY(:ids)"
)
_COPY_TAGS = text(
    """
    INSERT INTO customer_tags (tenant_id, customer_id, tag_id)
    SELECT tenant_id, :to_id, tag_id FROM customer_tags WHERE customer_id = :from_id
    ON CONFLICT DO NOTHING RETURNING tag_id
    """
)
_REMOVE_TAGS = text("DELETE FROM customer_tags WHERE customer_id = :customer AND tag_id = ANY(:ids)")
_MOVE_CONSENTS = text("UPDATE consents SET customer_id = :to_id WHERE customer_id = :from_id RETURNING id")
_RESTORE_CONSENTS = text(
    "UPDATE consents SET customer_id = :to_id WHERE customer_id = :from_id AND id = ANY(:ids)"
)

Held = dict[IdentityKind, set[str]]


async def held_identities(session: AsyncSession, customer_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Held]:
    held: dict[uuid.UUID, Held] = defaultdict(lambda: defaultdict(set))
    rows = await session.execute(
        select(CustomerIdentity.customer_id, CustomerIdentity.kind, CustomerIdentity.value).where(
            CustomerIdentity.customer_id.in_(customer_ids)
        )
    )
    for customer_id, kind, value in rows:
        held[customer_id][IdentityKind(kind)].add(value)
    return held


def conflicts(a: Held, b: Held) -> list[IdentityKind]:
    """Kinds a person has one of, of which the two profiles hold different values."""
    return [k for k, limit in LIMITS.items() if limit == 1 and a.get(k) and b.get(k) and a[k] != b[k]]


def within_limits(a: Held, b: Held) -> bool:
    return all(len(a.get(k, set()) | b.get(k, set())) <= limit for k, limit in LIMITS.items())


async def merge_customers(
    session: AsyncSession,
    survivor_id: uuid.UUID,
    merged_ids: Sequence[uuid.UUID],
    *,
    actor: str,
    rule: str = MANUAL,
) -> list[CustomerMerge]:
    """Merge profiles into the survivor. Refused whole when a profile is missing, already merged,
    or holds another value of a kind a person has only one of (two unionids: two people)."""
    merged_ids = list(dict.fromkeys(merged_ids))
    if not merged_ids or len(merged_ids) > MAX_MERGED_PER_CALL:
        raise InvalidInput(
            Problem("mergedIds", "INVALID_COUNT", f"Merge 1 to {MAX_MERGED_PER_CALL} profiles at once.")
        )
    if survivor_id in merged_ids:
        raise InvalidInput(Problem("mergedIds", "SELF_MERGE", "A profile cannot be merged into itself."))
    ids = [survivor_id, *merged_ids]
    rows = {
        c.id: c
        for c in await session.scalars(
            select(Customer).where(Customer.id.in_(ids)).order_by(Customer.id).with_for_update()
        )
    }
    problems = []
    for customer_id in ids:
        field = "survivorId" if customer_id == survivor_id else "mergedIds"
        customer = rows.get(customer_id)
        if customer is None:
            problems.append(Problem(field, "NOT_FOUND", f"No customer has the id {customer_id}."))
        elif customer.merged_into_id is not None:
            problems.append(
                Problem(field, "ALREADY_MERGED", "This profile is merged already; use its survivor.")
            )
    if problems:
        raise InvalidInput(*problems)
    held = await held_identities(session, ids)
    combined: Held = defaultdict(set, {k: set(v) for k, v in held[survivor_id].items()})
    for merged_id in merged_ids:
        clash = conflicts(combined, held[merged_id])
        if clash:
            raise InvalidInput(
                Problem(
                    "mergedIds",
                    "CONFLICTING_IDENTITIES",
                    f"The profiles hold different {', '.join(k.value for k in clash)}: they are different people.",
                )
            )
        for kind, values in held[merged_id].items():
            combined[kind] |= values

    records = []
    for merged_id in merged_ids:
        moved = await _move(session, merged_id, survivor_id)
        rows[merged_id].merged_into_id = survivor_id
        record = CustomerMerge(
            tenant_id=current_tenant(session),
            survivor_id=survivor_id,
            merged_id=merged_id,
            rule=rule,
            actor=actor,
            moved=moved,
        )
        session.add(record)
        records.append(record)
        await audit.record(
            session,
            actor=actor,
            action="customer.merge",
            target_type="Customer",
            target_id=merged_id,
            after={
                "survivor": str(survivor_id),
                "rule": rule,
                "moved": {k: len(v) for k, v in moved.items()},
            },
        )
    await session.flush()
    return records


async def _move(session: AsyncSession, from_id: uuid.UUID, to_id: uuid.UUID) -> dict[str, list[str]]:
    params = {"from_id": from_id, "to_id": to_id}
    moved = {
        "identities": [str(i) for i in (await session.scalars(_MOVE_IDENTITIES, params))],
        "tags": [str(t) for t in (await session.scalars(_COPY_TAGS, params))],
        "consents": [str(c) for c in (await session.scalars(_MOVE_CONSENTS, params))],
    }
    for name, participant in _participants.items():
        moved[name] = await participant.move(session, from_id, to_id)
    return moved


async def unmerge_customer(session: AsyncSession, merged_id: uuid.UUID, *, actor: str) -> CustomerMerge:
    """Undo the merge of this profile: what moved goes back, and it is a profile of its own again."""
    merge = await session.scalar(
        select(CustomerMerge)
        .where(CustomerMerge.merged_id == merged_id, CustomerMerge.undone_at.is_(None))
        .order_by(CustomerMerge.created_at.desc())
        .limit(1)
        .with_for_update()
    )
    if merge is None:
        raise InvalidInput(Problem("id", "NOT_MERGED", "This profile is not merged into another."))
    people = {
        c.id: c
        for c in await session.scalars(
            select(Customer)
            .where(Customer.id.in_([merge.survivor_id, merged_id]))
            .order_by(Customer.id)
            .with_for_update()
        )
    }
    survivor = people[merge.survivor_id]
    if survivor.erased_at is not None:
        raise InvalidInput(
            Problem("id", "ERASED", "The person's data was erased; there is nothing to restore.")
        )
    if survivor.merged_into_id is not None:
        raise InvalidInput(
            Problem("id", "UNMERGE_ORDER", "Its survivor was merged later: unmerge that profile first.")
        )
    moved = merge.moved
    await session.execute(
        _RESTORE_IDENTITIES,
        {
            "from_id": survivor.id,
            "to_id": merged_id,
            "ids": [uuid.UUID(i) for i in moved.get("identities", [])],
        },
    )
    await session.execute(
        _REMOVE_TAGS, {"customer": survivor.id, "ids": [uuid.UUID(t) for t in moved.get("tags", [])]}
    )
    await session.execute(
        _RESTORE_CONSENTS,
        {
            "from_id": survivor.id,
            "to_id": merged_id,
            "ids": [uuid.UUID(c) for c in moved.get("consents", [])],
        },
    )
    for name, participant in _participants.items():
        await participant.restore(session, moved.get(name, []), survivor.id, merged_id)
    people[merged_id].merged_into_id = None
    merge.undone_at = datetime.now(UTC)
    merge.undone_by = actor
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as error:
        raise InvalidInput(
            Problem("id", "UNMERGE_CONFLICT", "The survivor now uses this profile's email; change it first.")
        ) from error
    await audit.record(
        session,
        actor=actor,
        action="customer.unmerge",
        target_type="Customer",
        target_id=merged_id,
        before={"survivor": str(survivor.id), "rule": merge.rule},
    )
    return merge


async def merges_of(session: AsyncSession, customer_id: uuid.UUID, *, limit: int) -> list[CustomerMerge]:
    """The merges this profile took part in, newest first."""
    rows = await session.scalars(
        select(CustomerMerge)
        .where((CustomerMerge.survivor_id == customer_id) | (CustomerMerge.merged_id == customer_id))
        .order_by(CustomerMerge.created_at.desc(), CustomerMerge.id.desc())
        .limit(limit)
    )
    return list(rows)
