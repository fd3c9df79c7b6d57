"""The exported schema matches the code, and every entry point states its permission."""

from __future__ import annotations

from pathlib import Path

from brandloop.graphql.permissions import Needs
from brandloop.graphql.schema import Mutation, Query, sdl

EXPORTED = Path(__file__).resolve().parents[2] / "docs" / "schema.graphql"


def test_docs_schema_matches_the_code() -> None:
    assert EXPORTED.read_text() == sdl(), (
        "The schema changed: run `make schema` and commit docs/schema.graphql."
    )


def test_every_query_and_mutation_declares_a_permission() -> None:
    for root in (Query, Mutation):
        for field in root.__strawberry_definition__.fields:
            needs = [e for e in field.extensions if isinstance(e, Needs)]
            assert len(needs) == 1, f"{root.__name__}.{field.name} must declare Needs(...)"
            assert "permission" in (field.description or ""), field.name
