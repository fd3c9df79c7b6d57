"""Errors the domain services raise; the API layer turns them into user errors or error codes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with an input: which field, a stable code, and what to do about it."""

    field: str | None
    code: str
    message: str


class InvalidInput(Exception):
    """The input cannot be accepted; nothing was written."""

    def __init__(self, *problems: Problem) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = list(problems)


class ApiError(Exception):
    """A failure reported to the client as a GraphQL error with `code` in its extensions."""

    code = "BAD_REQUEST"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class Forbidden(ApiError):
    code = "FORBIDDEN"


class Unauthenticated(ApiError):
    code = "UNAUTHENTICATED"
