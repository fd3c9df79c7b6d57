"""Typed user errors in mutation payloads, and the codes every GraphQL error carries."""

from __future__ import annotations

from typing import Any

import strawberry
from graphql import GraphQLError

from brandloop.errors import ApiError, InvalidInput

INTERNAL = "INTERNAL_SERVER_ERROR"


@strawberry.type(description="Why a mutation's input was refused; nothing of it was written.")
class UserError:
    field: str | None = strawberry.field(description="The input field at fault, if one is.")
    code: str = strawberry.field(description="A stable code to branch on, e.g. INVALID_EMAIL.")
    message: str = strawberry.field(description="What is wrong and what to do, for people.")


def user_errors(error: InvalidInput) -> list[UserError]:
    return [UserError(field=p.field, code=p.code, message=p.message) for p in error.problems]


def error_code(error: GraphQLError) -> str:
    """The code a client sees; INTERNAL_SERVER_ERROR for anything we did not mean to raise."""
    original = error.original_error
    while isinstance(original, GraphQLError) and original.original_error is not None:
        original = original.original_error
    if isinstance(original, ApiError):
        return original.code
    if original is None or isinstance(original, GraphQLError) or (error.path is None and error.locations):
        # Parse, validation and variable errors point at the request: the client's to fix.
        return (error.extensions or {}).get("code", "GRAPHQL_VALIDATION_FAILED")
    return INTERNAL


def format_error(error: GraphQLError, request_id: str) -> dict[str, Any]:
    """The error as sent: ours keep their message; anything unexpected is masked."""
    code = error_code(error)
    if code == INTERNAL:
        masked = GraphQLError(
            f"Internal server error. Quote request id {request_id} when reporting it.", path=error.path
        )
        return {**masked.formatted, "extensions": {"code": INTERNAL}}
    return {**error.formatted, "extensions": {**(error.extensions or {}), "code": code}}
