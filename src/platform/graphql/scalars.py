"""Scalars shared by the domains."""

from __future__ import annotations

from typing import Any, NewType

import strawberry
from graphql import IntValueNode, ValueNode


def _whole(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("Give amounts as whole minor units (an integer, e.g. 1999 for 19.99).")
    return value


def _literal(node: ValueNode, variables: dict[str, Any] | None = None) -> int:
    if not isinstance(node, IntValueNode):
        raise ValueError("Give amounts as whole minor units (an integer, e.g. 1999 for 19.99).")
    return int(node.value)


MinorUnits = NewType("MinorUnits", int)

SCALARS = {
    MinorUnits: strawberry.scalar(
        name="MinorUnits",
        description=(
            "An amount in the minor units of its currency (fen, cents; yen have none), as a JSON "
            "integer: exact up to 2^53."
        ),
        serialize=int,
        parse_value=_whole,
        parse_literal=_literal,
    )
}
"""For StrawberryConfig(scalar_map=...)."""


@strawberry.type(description="An amount of money in one currency.")
class Money:
    amount: MinorUnits
    currency: str
