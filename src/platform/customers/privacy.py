"""Consent, and a person's rights over their data: export and erasure (PIPL, GDPR).

Erasure removes what identifies the person (name, email, phone, identities, tags, consents, on
the profile and on every profile merged into it) and keeps the profile as an anonymous row, so
that orders, revenue and segments still add up. The identities are kept only as SHA-256 digests,
a suppression list: a channel re-sending the person's data does not bring them back.
"""

from __future__ import annotations

import enum
import re
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import CursorResult, Delete, delete, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from brandloop.audit import service as audit
from brandloop.customers import resolution
from brandloop.customers.identities import identity_digest
from brandloop.customers.models import Consent, Customer, CustomerIdentity, CustomerTag, ErasedIdentity, Tag
from brandloop.db.session import current_tenant
from brandloop.errors import InvalidInput, Problem
from brandloop.orders import service as orders

ERASED_NAME = "Erased customer"
CHANNEL = re.compile(r"^[a-z][a-z0-9_]{1,31}$")
MAX_SOURCE = 64
MAX_EVIDENCE = 1000


class Purpose(enum.StrEnum):
    MARKETING = "marketing"
    SURVEYS = "surveys"


# -- consent -----------------------------------------------------------------------------------


async def record_consent(
    session: AsyncSession,
    customer_id: uuid.UUID,
    *,
    channel: str,
    purpose: Purpose,
    granted: bool,
    source: str,
    evidence: str | None,
    actor: str,
) -> Consent:
    """Append a grant or a withdrawal; nothing earlier is changed or removed."""
    channel, source = channel.strip().lower(), source.strip()
    problems = []
    if not CHANNEL.match(channel):
        problems.append(
            Problem("channel", "INVALID_CHANNEL", "A channel is a short lower-case name like wechat.")
        )
    if not 0 < len(source) <= MAX_SOURCE:
        problems.append(
            Problem("source", "INVALID_LENGTH", f"Say where it came from in 1 to {MAX_SOURCE} characters.")
        )
    if evidence is not None and len(evidence) > MAX_EVIDENCE:
        problems.append(
            Problem("evidence", "INVALID_LENGTH", f"Evidence is at most {MAX_EVIDENCE} characters.")
        )
    if problems:
        raise InvalidInput(*problems)
    customer = await _active(session, customer_id)
    consent = Consent(
        tenant_id=current_tenant(session),
        customer_id=customer.id,
        channel=channel,
        purpose=purpose.value,
        granted=granted,
        source=source,
        evidence=evidence,
        actor=actor,
    )
    session.add(consent)
    await session.flush()
    await session.refresh(consent)
    await audit.record(
        session,
        actor=actor,
        action="consent.record",
        target_type="Customer",
        target_id=customer.id,
        after={"channel": channel, "purpose": purpose.value, "granted": granted, "source": source},
    )
    return consent


async def consent_history(
    session: AsyncSession, customer_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[Consent]]:
    """Every consent record of these customers, newest first."""
    rows = await session.scalars(
        select(Consent)
        .where(Consent.customer_id.in_(customer_ids))
        .order_by(Consent.recorded_at.desc(), Consent.id.desc())
    )
    found: dict[uuid.UUID, list[Consent]] = defaultdict(list)
    for row in rows:
        found[row.customer_id].append(row)
    return found


def in_force(history: Sequence[Consent]) -> list[Consent]:
    """The latest record per channel and purpose, from a newest-first history."""
    latest: dict[tuple[str, str], Consent] = {}
    for consent in history:
        latest.setdefault((consent.channel, consent.purpose), consent)
    return sorted(latest.values(), key=lambda c: (c.channel, c.purpose))


# -- export ------------------------------------------------------------------------------------


async def export_customer(session: AsyncSession, customer_id: uuid.UUID, *, actor: str) -> dict[str, Any]:
    """Everything held about the person, as JSON-ready data."""
    customer = await session.get(Customer, (current_tenant(session), customer_id))
    if customer is None:
        raise InvalidInput(Problem("customerId", "NOT_FOUND", "No customer has this id."))
    people = await _with_merged(session, customer_id)
    identities = await resolution.identities_of(session, people)
    tags = await session.execute(
        select(CustomerTag.customer_id, Tag.name)
        .join(Tag, (Tag.tenant_id == CustomerTag.tenant_id) & (Tag.id == CustomerTag.tag_id))
        .where(CustomerTag.customer_id.in_(people))
    )
    consents = await consent_history(session, people)
    placed = await orders.orders_of_customers(session, people, first=1_000_000, after=None)
    lines = await orders.lines_of(session, [o.id for rows in placed.values() for o in rows])
    rows = {c.id: c for c in await session.scalars(select(Customer).where(Customer.id.in_(people)))}
    tags_by: dict[uuid.UUID, list[str]] = defaultdict(list)
    for owner, name in tags:
        tags_by[owner].append(name)
    export = {
        "exportedAt": datetime.now(UTC).isoformat(),
        "profiles": [
            {
                "id": str(person),
                "displayName": rows[person].display_name,
                "email": rows[person].email,
                "phone": rows[person].phone,
                "lifecycleStage": rows[person].lifecycle_stage,
                "createdAt": rows[person].created_at.isoformat(),
                "mergedInto": str(rows[person].merged_into_id) if rows[person].merged_into_id else None,
                "erasedAt": rows[person].erased_at.isoformat() if rows[person].erased_at else None,
                "identities": [
                    {"kind": i.kind, "value": i.value, "source": i.source, "since": i.created_at.isoformat()}
                    for i in identities.get(person, [])
                ],
                "tags": sorted(tags_by[person]),
                "consents": [
                    {
                        "channel": c.channel,
                        "purpose": c.purpose,
                        "granted": c.granted,
                        "source": c.source,
                        "evidence": c.evidence,
                        "recordedAt": c.recorded_at.isoformat(),
                    }
                    for c in consents.get(person, [])
                ],
                "orders": [
                    {
                        "channel": o.channel,
                        "externalId": o.external_id,
                        "status": o.status,
                        "currency": o.currency,
                        "total": o.total,
                        "refunded": o.refunded,
                        "placedAt": o.placed_at.isoformat(),
                        "lines": [
                            {
                                "sku": x.sku,
                                "productName": x.product_name,
                                "quantity": x.quantity,
                                "unitPrice": x.unit_price,
                            }
                            for x in lines.get(o.id, [])
                        ],
                    }
                    for o in placed.get(person, [])
                ],
            }
            for person in people
        ],
    }
    await audit.record(
        session, actor=actor, action="customer.export", target_type="Customer", target_id=customer_id
    )
    return export


# -- erasure -----------------------------------------------------------------------------------


async def erase_customer(session: AsyncSession, customer_id: uuid.UUID, *, actor: str) -> Customer:
    customer = await session.scalar(select(Customer).where(Customer.id == customer_id).with_for_update())
    if customer is None:
        raise InvalidInput(Problem("customerId", "NOT_FOUND", "No customer has this id."))
    if customer.merged_into_id is not None:
        raise InvalidInput(
            Problem(
                "customerId", "MERGED", "This profile is merged: erase its survivor, which erases it too."
            )
        )
    people = await _with_merged(session, customer_id)
    held = await session.execute(
        select(CustomerIdentity.kind, CustomerIdentity.value).where(CustomerIdentity.customer_id.in_(people))
    )
    contacts = await session.execute(select(Customer.email, Customer.phone).where(Customer.id.in_(people)))
    digests = {identity_digest(kind, value) for kind, value in held}
    for email, phone in contacts:
        digests |= {identity_digest("email", email)} if email else set()
        digests |= {identity_digest("phone", phone)} if phone else set()
    if digests:
        await session.execute(
            pg_insert(ErasedIdentity)
            .values([{"tenant_id": current_tenant(session), "digest": d} for d in digests])
            .on_conflict_do_nothing()
        )
    counts = {
        "identities": await _delete(
            session, delete(CustomerIdentity).where(CustomerIdentity.customer_id.in_(people))
        ),
        "tags": await _delete(session, delete(CustomerTag).where(CustomerTag.customer_id.in_(people))),
        "consents": await _delete(session, delete(Consent).where(Consent.customer_id.in_(people))),
    }
    await session.execute(
        update(Customer)
        .where(Customer.id.in_(people))
        .values(display_name=ERASED_NAME, email=None, phone=None, erased_at=datetime.now(UTC))
        .execution_options(synchronize_session=False)
    )
    await audit.record(
        session,
        actor=actor,
        action="customer.erase",
        target_type="Customer",
        target_id=customer_id,
        after={"profiles": len(people), **counts},
    )
    await session.refresh(customer)
    return customer


_MERGED_INTO = text(
    """
    WITH RECURSIVE people(id) AS (
        SELECT CAST(:id AS uuid)
        UNION
        SELECT c.id FROM customers c JOIN people p ON c.merged_into_id = p.id
    ) SELECT id FROM people
    """
)


async def _with_merged(session: AsyncSession, customer_id: uuid.UUID) -> list[uuid.UUID]:
    """The profile and every profile merged into it, directly or through others."""
    return list(await session.scalars(_MERGED_INTO, {"id": customer_id}))


async def _delete(session: AsyncSession, statement: Delete) -> int:
    result = await session.execute(statement)
    return result.rowcount if isinstance(result, CursorResult) else 0


async def _active(session: AsyncSession, customer_id: uuid.UUID) -> Customer:
    customer = await session.get(Customer, (current_tenant(session), customer_id))
    if customer is None or customer.merged_into_id is not None:
        raise InvalidInput(Problem("customerId", "NOT_FOUND", "No active customer has this id."))
    if customer.erased_at is not None:
        raise InvalidInput(Problem("customerId", "ERASED", "This person's data was erased."))
    return customer
