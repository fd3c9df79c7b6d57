"""Points from orders: every stored order is brought to what it should hold in each program."""

from __future__ import annotations

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
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from brandloop.db.session import current_tenant
from brandloop.loyalty import ledger, tiers
from brandloop.loyalty.models import (
    Enrolment,
    EntryKind,
    EntrySource,
    ProgramStatus,
)
from brandloop.loyalty.rules import EarningRules, Line, order_points
from brandloop.orders import service as orders
from brandloop.tenancy.models import TenantSettings
from brandloop.tenancy.service import settings_of

# -- accrual from orders ---------------------------------------------------------------------------


# Three plain statements rather than one: each keeps to its index even while an import grows
# the tables faster than their statistics follow.
_ACCRUAL = text(
    """
    SELECT o.id AS order_id, o.customer_id, o.channel, o.status, o.currency, o.total, o.refunded,
           o.placed_at, p.id AS program_id, p.status AS program_status, p.enrolment, p.pending_days,
           p.expiry_policy, p.expiry_period, v.version, v.rules, a.id AS account_id, t.multiplier AS tier_factor
      FROM orders o
      -- A program that no longer covers the order's channel still reverses what the order earned.
      JOIN loyalty_programs p
        ON p.status <> 'closed'
       AND (cardinality(p.channels) = 0 OR o.channel = ANY(p.channels)
            OR EXISTS (SELECT FROM loyalty_order_valuations v WHERE v.program_id = p.id AND v.order_id = o.id))
      LEFT JOIN LATERAL (
        SELECT v.version, v.rules FROM loyalty_rule_versions v
         WHERE v.program_id = p.id AND v.effective_from <= o.placed_at
         ORDER BY v.effective_from DESC LIMIT 1) v ON true
      LEFT JOIN loyalty_accounts a ON a.program_id = p.id AND a.customer_id = o.customer_id
      LEFT JOIN loyalty_tiers t ON t.id = a.tier_id
     WHERE o.id = ANY(:ids) AND o.customer_id IS NOT NULL
    """
)
_VALUATIONS = text(
    """
    SELECT program_id, order_id, points, rule_version FROM loyalty_order_valuations
     WHERE program_id = ANY(:programs) AND order_id = ANY(:ids)
    """
)
# Across the program's accounts: a merge may have moved an order's points to another account.
_HELD = text(
    """
    SELECT a.program_id, e.source_id, e.account_id, e.id, e.delta
      FROM loyalty_ledger e JOIN loyalty_accounts a ON a.id = e.account_id
     WHERE e.source = 'order' AND e.source_id = ANY(:ids)
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
    INSERT INTO loyalty_order_valuations
           (tenant_id, program_id, order_id, points, uncapped_points, spend, rule_version)
    SELECT :tenant, * FROM unnest(CAST(:programs AS uuid[]), CAST(:orders AS uuid[]), CAST(:points AS bigint[]),
                                  CAST(:uncapped AS bigint[]), CAST(:spends AS bigint[]), CAST(:versions AS int[]))
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
    rows = await _rows(session, order_ids)
    if not rows:
        return
    settings = await settings_of(session)
    # A paused program values nothing new, but still reverses what its orders earned.
    valued = await _value(
        session,
        settings,
        [
            r
            for r in rows
            if r["valued"] is None and _earns(r) and r["program_status"] == ProgramStatus.ACTIVE
        ],
    )
    accounts = await ledger.ensure_accounts(
        session,
        [
            (r["program_id"], r["customer_id"])
            for r in rows
            if r["account_id"] is None and r["enrolment"] == Enrolment.AUTOMATIC and _target(r, valued) > 0
        ],
    )
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
            ledger.Posting(
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
                expires_at=ledger.expiry_of(r["expiry_policy"], r["expiry_period"], effective, zone)
                if earning
                else None,
                available_at=effective + timedelta(days=r["pending_days"]) if earning else None,
                first_lots=r["lots"] or (),
            )
        )
    await ledger.post(session, postings)
    await tiers.upgrade(session, sorted({p.account_id for p in postings}))


async def _rows(session: AsyncSession, order_ids: Sequence[uuid.UUID]) -> list[dict[str, Any]]:
    """Each (order, program) pair with its valuation and what the order holds in the program."""
    rows = [dict(r) for r in (await session.execute(_ACCRUAL, {"ids": list(order_ids)})).mappings()]
    if not rows:
        return []
    ids, programs = list({r["order_id"] for r in rows}), list({r["program_id"] for r in rows})
    valuations = {
        (program_id, order_id): (points, version)
        for program_id, order_id, points, version in await session.execute(
            _VALUATIONS, {"programs": programs, "ids": ids}
        )
    }
    held: dict[tuple[uuid.UUID, str], list[tuple[uuid.UUID, uuid.UUID, int]]] = defaultdict(list)
    for program_id, source_id, account_id, entry_id, delta in await session.execute(
        _HELD, {"ids": [str(i) for i in ids]}
    ):
        held[(program_id, source_id)].append((account_id, entry_id, delta))
    for r in rows:
        r["valued"], r["valued_version"] = valuations.get((r["program_id"], r["order_id"]), (None, None))
        entries = held[(r["program_id"], str(r["order_id"]))]
        r["earned"] = sum(delta for _, _, delta in entries)
        r["entries"] = len(entries)
        # The order's own lots in the account it earns in now: a reversal takes from them first.
        r["lots"] = [entry for account, entry, delta in entries if delta > 0 and account == r["account_id"]]
    return rows


def _earns(row: Any) -> bool:
    # A cancelled or refunded order earns nothing: what it earned is reversed.
    return row["status"] in orders.PAID_STATUSES and row["total"] > 0


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
    session: AsyncSession, settings: TenantSettings, rows: Sequence[Any]
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
    parsed: dict[tuple[uuid.UUID, int], EarningRules] = {}
    uncapped: dict[tuple[uuid.UUID, uuid.UUID], int] = {}
    spends: dict[tuple[uuid.UUID, uuid.UUID], int] = {}
    for r in sorted(rows, key=lambda r: (r["placed_at"], r["order_id"])):
        total = converted.get(r["order_id"])
        if total is None:
            continue
        version_key = (r["program_id"], r["version"])
        rules = parsed.get(version_key) or parsed.setdefault(version_key, EarningRules.from_json(r["rules"]))
        raw = order_points(
            rules,
            spend=Decimal(total.amount) / exponent,
            channel=r["channel"],
            paid_at=r["placed_at"],
            lines=lines[r["order_id"]],
            tier_factor=r["tier_factor"] or Decimal(1),
        )
        # Caps count per customer account; a customer without one yet has earned nothing so far.
        cap_key = r["account_id"] or r["customer_id"]
        room = caps.room(rules, cap_key, r["placed_at"])
        points = raw if room is None else min(raw, room)
        key = (r["program_id"], r["order_id"])
        valued[key] = (points, r["version"])
        uncapped[key] = raw
        spends[key] = total.amount
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
                "spends": [spends[k] for k in valued],
                "versions": [version for _, version in valued.values()],
            },
        )
    return valued
