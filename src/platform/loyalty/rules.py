"""Earning rules: the document a program version stores, its validation, and what an order earns.

Stacking, in the order it is applied (docs/loyalty.md has the worked example):
1. Each line gets its product factor: the SKU's multiplier, else its category's, else 1
   (the more specific one wins; they never multiply).
2. The order's spend (its total in the reporting currency) is spread over the lines by their
   amounts, so the order's product factor is the amount-weighted mean of the line factors.
3. Order factors multiply: the channel's multiplier, the customer's tier multiplier, and the
   campaigns running when the order was paid: every "stack" campaign multiplies, and of the "best"
   campaigns only the highest counts.
4. points = spend in whole units x points_per_unit x product factor x order factors, rounded down
   to a whole point once per order.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from brandloop.errors import InvalidInput, Problem

MAX_FACTOR = Decimal(100)
MAX_POINTS_PER_UNIT = Decimal(10_000)
MAX_POINTS = 10**9
"""Fixed points of one event rule or cap: far above any real program."""
MAX_ENTRIES = 200


class Target(enum.StrEnum):
    CHANNEL = "channel"
    CATEGORY = "category"
    SKU = "sku"


class Stacking(enum.StrEnum):
    STACK = "stack"
    """Multiplies with every other campaign running at the same time."""
    BEST = "best"
    """Of the "best" campaigns running at the same time, only the highest factor counts."""


class EventKind(enum.StrEnum):
    REVIEW = "review"
    REFERRAL_CONVERTED = "referral_converted"
    BIRTHDAY = "birthday"
    NPS_RESPONSE = "nps_response"
    CONTENT_SHARED = "content_shared"
    SIGN_UP = "sign_up"


Factor = Annotated[Decimal, Field(gt=0, le=MAX_FACTOR, max_digits=12, decimal_places=4)]
Label = Annotated[str, Field(min_length=1, max_length=100)]


class _Document(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Multiplier(_Document):
    applies_to: Target
    value: Label
    factor: Factor


class Campaign(_Document):
    name: Label
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    factor: Factor
    stacking: Stacking | None = None
    """Required when the campaign overlaps another (same time, a channel in common)."""
    channels: Annotated[list[Label], Field(max_length=50)] = []
    """Empty: every channel of the program."""

    def runs(self, at: datetime, channel: str) -> bool:
        return self.starts_at <= at < self.ends_at and (not self.channels or channel in self.channels)


class EventRule(_Document):
    kind: EventKind
    points: Annotated[int, Field(ge=0, le=MAX_POINTS)]
    per_customer_monthly: Annotated[int | None, Field(gt=0, le=1000)] = None
    """How many times a customer earns for this event in a month (the tenant's month)."""
    monthly_budget: Annotated[int | None, Field(gt=0, le=MAX_POINTS)] = None
    """Most points the whole program gives for this event in a month."""


class EarningRules(_Document):
    points_per_unit: Annotated[Decimal, Field(ge=0, le=MAX_POINTS_PER_UNIT, max_digits=12, decimal_places=4)]
    """Points per whole unit of the reporting currency spent."""
    multipliers: Annotated[list[Multiplier], Field(max_length=MAX_ENTRIES)] = []
    campaigns: Annotated[list[Campaign], Field(max_length=MAX_ENTRIES)] = []
    events: Annotated[list[EventRule], Field(max_length=len(EventKind))] = []
    daily_cap: Annotated[int | None, Field(gt=0, le=MAX_POINTS)] = None
    """Most points a customer earns from orders paid on one day (the tenant's day)."""
    monthly_cap: Annotated[int | None, Field(gt=0, le=MAX_POINTS)] = None

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_json(cls, stored: dict[str, Any]) -> EarningRules:
        return cls.model_validate(stored)


def parse_rules(raw: dict[str, Any]) -> EarningRules:
    """The rules, or InvalidInput naming every problem (field paths under `rules`)."""
    try:
        rules = EarningRules.model_validate(raw)
    except ValidationError as error:
        raise InvalidInput(
            *(
                Problem(".".join(["rules", *(_camel(str(p)) for p in e["loc"])]), "INVALID_RULE", e["msg"])
                for e in error.errors()
            )
        ) from None
    problems: list[Problem] = []
    seen: set[tuple[Target, str]] = set()
    for n, m in enumerate(rules.multipliers):
        if (m.applies_to, m.value) in seen:
            problems.append(
                Problem(
                    f"rules.multipliers.{n}",
                    "DUPLICATE_MULTIPLIER",
                    f"There is already a multiplier for {m.applies_to.value} {m.value!r}.",
                )
            )
        seen.add((m.applies_to, m.value))
    for n, c in enumerate(rules.campaigns):
        if c.ends_at <= c.starts_at:
            problems.append(
                Problem(f"rules.campaigns.{n}.endsAt", "INVALID_PERIOD", "A campaign ends after it starts.")
            )
    for n, a in enumerate(rules.campaigns):
        for b in rules.campaigns[n + 1 :]:
            if _overlap(a, b) and (a.stacking is None or b.stacking is None):
                problems.append(
                    Problem(
                        f"rules.campaigns.{n}.stacking",
                        "STACKING_REQUIRED",
                        f"Campaigns {a.name!r} and {b.name!r} run at the same time: "
                        "say for each whether it stacks or only the best counts.",
                    )
                )
    kinds = [e.kind for e in rules.events]
    if len(set(kinds)) != len(kinds):
        problems.append(Problem("rules.events", "DUPLICATE_EVENT", "Give each event kind at most one rule."))
    if problems:
        raise InvalidInput(*problems)
    return rules


def _overlap(a: Campaign, b: Campaign) -> bool:
    channels = not a.channels or not b.channels or bool(set(a.channels) & set(b.channels))
    return channels and a.starts_at < b.ends_at and b.starts_at < a.ends_at


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


@dataclass(frozen=True, slots=True)
class Line:
    sku: str
    category: str | None
    amount: int
    """Minor units, any currency: only the proportions between lines matter."""


def order_points(
    rules: EarningRules,
    *,
    spend: Decimal,
    channel: str,
    paid_at: datetime,
    lines: Sequence[Line],
    tier_factor: Decimal = Decimal(1),
) -> int:
    """What an order earns under `rules` (see the module's docstring for the stacking)."""
    if spend <= 0:
        return 0
    factors = {(m.applies_to, m.value): m.factor for m in rules.multipliers}
    order_factor = factors.get((Target.CHANNEL, channel), Decimal(1)) * tier_factor
    running = [c for c in rules.campaigns if c.runs(paid_at, channel)]
    for campaign in running:
        if campaign.stacking is not Stacking.BEST:
            order_factor *= campaign.factor
    best = [c.factor for c in running if c.stacking is Stacking.BEST]
    if best:
        order_factor *= max(best)
    total = sum(line.amount for line in lines)
    product_factor = Decimal(1)
    if total > 0:
        weighted = sum(
            line.amount
            * factors.get(
                (Target.SKU, line.sku), factors.get((Target.CATEGORY, line.category or ""), Decimal(1))
            )
            for line in lines
        )
        product_factor = Decimal(weighted) / Decimal(total)
    return min(math.floor(spend * rules.points_per_unit * product_factor * order_factor), MAX_POINTS)
