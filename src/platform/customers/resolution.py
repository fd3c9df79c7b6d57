"""Identity resolution: which profile each incoming buyer is, for a whole batch at once.

A batch costs a fixed number of statements whatever its size: the tenant's resolution lock, the
blocklist, the digests of erased identities, the identities already known, the identities their
profiles hold, then one insert of new profiles and one of new identities. Profiles are matched
in Python over those sets. Automatic merges (a buyer linking two profiles; rare) cost a few
statements each.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from typing import NamedTuple

from sqlalchemy import delete, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from brandloop.audit import service as audit
from brandloop.customers import merges
from brandloop.customers.identities import (
    LIMITS,
    PRIORITY,
    Identity,
    IdentityKind,
    identity_digest,
    is_placeholder,
)
from brandloop.customers.merges import Held, conflicts, within_limits
from brandloop.customers.models import BlockedIdentity, CustomerIdentity, ErasedIdentity
from brandloop.customers.service import MAX_NAME_LENGTH
from brandloop.db.base import uuid7
from brandloop.db.session import current_tenant, take_turns


class Buyer(NamedTuple):
    """Who placed an order, as a channel describes them."""

    source: str
    """The channel the record came from."""
    name: str | None
    identities: tuple[Identity, ...]


_KNOWN = text(
    """
    SELECT i.kind, i.value, i.customer_id
      FROM customer_identities i
      JOIN unnest(CAST(:kinds AS text[]), CAST(:vals AS text[])) AS w(kind, value)
        ON i.kind = w.kind AND i.value = w.value
    """
)
_HELD = text("SELECT customer_id, kind, value FROM customer_identities WHERE customer_id = ANY(:ids)")
_NEW_CUSTOMERS = text(
    """
    INSERT INTO customers (tenant_id, id, display_name, email, phone)
    SELECT :tenant, * FROM unnest(CAST(:ids AS uuid[]), CAST(:names AS text[]),
                                  CAST(:emails AS text[]), CAST(:phones AS text[]))
    """
)
_NEW_IDENTITIES = text(
    """
    INSERT INTO customer_identities (tenant_id, id, customer_id, kind, value, source)
    SELECT :tenant, * FROM unnest(CAST(:ids AS uuid[]), CAST(:customers AS uuid[]),
                                  CAST(:kinds AS text[]), CAST(:vals AS text[]), CAST(:sources AS text[]))
    """
)

AUTO_MERGE_ACTOR = "system:identity-resolution"


def _compatible(held: Held, incoming: Sequence[Identity]) -> bool:
    """False when the profile holds another value of a kind a person has only one of."""
    return not any(LIMITS[i.kind] == 1 and held.get(i.kind) and i.value not in held[i.kind] for i in incoming)


async def resolve_buyers(session: AsyncSession, buyers: Sequence[Buyer | None]) -> list[uuid.UUID | None]:
    """The profile of each buyer (None when it has no usable identity), creating and extending
    profiles as needed. Attached identities are recorded with the buyer's channel as source."""
    tenant_id = current_tenant(session)
    # One resolution at a time per tenant: two deliveries of a new person must not both create them.
    await take_turns(session, "identities")
    blocked = {
        (k, v) for k, v in (await session.execute(select(BlockedIdentity.kind, BlockedIdentity.value)))
    }
    usable = [
        [i for i in dict.fromkeys(b.identities) if not is_placeholder(i) and (i.kind, i.value) not in blocked]
        if b is not None
        else []
        for b in buyers
    ]
    erased = await _erased(session, {i for ids in usable for i in ids})
    usable = [[i for i in ids if i not in erased] for ids in usable]
    wanted = list({i for ids in usable for i in ids})
    owner: dict[Identity, uuid.UUID] = {}
    held: dict[uuid.UUID, Held] = defaultdict(lambda: defaultdict(set))
    if wanted:
        rows = await session.execute(
            _KNOWN, {"kinds": [i.kind.value for i in wanted], "vals": [i.value for i in wanted]}
        )
        owner = {Identity(IdentityKind(k), v): c for k, v, c in rows}
    if owner:
        for customer_id, kind, value in await session.execute(_HELD, {"ids": list(set(owner.values()))}):
            held[customer_id][IdentityKind(kind)].add(value)

    new_customers: dict[uuid.UUID, dict[str, str | None]] = {}
    new_identities: list[tuple[uuid.UUID, uuid.UUID, Identity, str]] = []
    auto_merges: list[tuple[uuid.UUID, uuid.UUID, str]] = []  # survivor, merged, rule
    absorbed: dict[uuid.UUID, uuid.UUID] = {}
    resolved: list[uuid.UUID | None] = []
    for buyer, identities in zip(buyers, usable, strict=True):
        if buyer is None or not identities:
            resolved.append(None)
            continue
        by_priority = sorted(identities, key=lambda i: PRIORITY.index(i.kind))
        candidates = list(dict.fromkeys(owner[i] for i in by_priority if i in owner))
        chosen = next((c for c in candidates if _compatible(held[c], identities)), None)
        if chosen is not None:
            # The buyer links other profiles to the chosen one: one person, unless a guard says no.
            for other in candidates:
                if other == chosen or other in absorbed or not _compatible(held[other], identities):
                    continue
                if conflicts(held[chosen], held[other]) or not within_limits(held[chosen], held[other]):
                    continue
                link = next(i.kind for i in by_priority if owner.get(i) == other)
                auto_merges.append((chosen, other, f"identity:{link.value}"))
                absorbed[other] = chosen
                for kind, values in held.pop(other).items():
                    held[chosen][kind] |= values
                for identity, holder in owner.items():
                    if holder == other:
                        owner[identity] = chosen
        if chosen is None:
            chosen = uuid7()
            name = (
                " ".join((buyer.name or "").split())[:MAX_NAME_LENGTH] or f"{buyer.source.title()} customer"
            )
            new_customers[chosen] = {"name": name, "email": None, "phone": None}
        for identity in by_priority:
            kinds = held[chosen][identity.kind]
            if identity in owner or len(kinds) >= LIMITS[identity.kind]:
                continue  # someone holds it already, or the profile is full of this kind
            kinds.add(identity.value)
            owner[identity] = chosen
            new_identities.append((uuid7(), chosen, identity, buyer.source))
            fields = new_customers.get(chosen)  # a new profile's contact fields: its first email, phone
            if fields is not None and fields.get(identity.kind.value, "") is None:
                fields[identity.kind.value] = identity.value
        resolved.append(chosen)

    if new_customers:
        await session.execute(
            _NEW_CUSTOMERS,
            {
                "tenant": tenant_id,
                "ids": list(new_customers),
                "names": [f["name"] for f in new_customers.values()],
                "emails": [f["email"] for f in new_customers.values()],
                "phones": [f["phone"] for f in new_customers.values()],
            },
        )
    if new_identities:
        await session.execute(
            _NEW_IDENTITIES,
            {
                "tenant": tenant_id,
                "ids": [n[0] for n in new_identities],
                "customers": [n[1] for n in new_identities],
                "kinds": [n[2].kind.value for n in new_identities],
                "vals": [n[2].value for n in new_identities],
                "sources": [n[3] for n in new_identities],
            },
        )
    for survivor, merged, rule in auto_merges:
        await merges.merge_customers(session, survivor, [merged], actor=AUTO_MERGE_ACTOR, rule=rule)
    return [_survivor(r, absorbed) if r is not None else None for r in resolved]


async def _erased(session: AsyncSession, identities: set[Identity]) -> set[Identity]:
    """Those of the identities that belonged to a person whose data was erased."""
    if not identities:
        return set()
    by_digest = {identity_digest(i.kind.value, i.value): i for i in identities}
    found = await session.scalars(
        select(ErasedIdentity.digest).where(ErasedIdentity.digest.in_(list(by_digest)))
    )
    return {by_digest[bytes(d)] for d in found}


def _survivor(customer_id: uuid.UUID, absorbed: dict[uuid.UUID, uuid.UUID]) -> uuid.UUID:
    while customer_id in absorbed:
        customer_id = absorbed[customer_id]
    return customer_id


async def identities_of(
    session: AsyncSession, customer_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[CustomerIdentity]]:
    rows = await session.scalars(
        select(CustomerIdentity)
        .where(CustomerIdentity.customer_id.in_(customer_ids))
        .order_by(CustomerIdentity.kind, CustomerIdentity.value)
    )
    found: dict[uuid.UUID, list[CustomerIdentity]] = defaultdict(list)
    for identity in rows:
        found[identity.customer_id].append(identity)
    return found


async def block_value(session: AsyncSession, identity: Identity, *, actor: str) -> None:
    """Never match on this value again. Profiles already holding it keep it; new buyers with it
    are not joined to them by it."""
    await session.execute(
        pg_insert(BlockedIdentity)
        .values(tenant_id=current_tenant(session), kind=identity.kind.value, value=identity.value)
        .on_conflict_do_nothing()
    )
    await audit.record(
        session, actor=actor, action="identity.block", target_type="BlockedIdentity", after=identity._asdict()
    )


async def unblock_value(session: AsyncSession, identity: Identity, *, actor: str) -> bool:
    deleted = await session.execute(
        delete(BlockedIdentity)
        .where(BlockedIdentity.kind == identity.kind.value, BlockedIdentity.value == identity.value)
        .returning(BlockedIdentity.value)
    )
    if deleted.first() is None:
        return False
    await audit.record(
        session,
        actor=actor,
        action="identity.unblock",
        target_type="BlockedIdentity",
        before=identity._asdict(),
    )
    return True


async def blocked_values(session: AsyncSession, *, limit: int) -> list[BlockedIdentity]:
    rows = await session.scalars(
        select(BlockedIdentity).order_by(BlockedIdentity.kind, BlockedIdentity.value).limit(limit)
    )
    return list(rows)
