"""Responses of the public endpoints that are not GraphQL (survey links, platform callbacks,
webhooks): an error is `{"error": {"code", "message"}}` with its HTTP status."""

from __future__ import annotations

from starlette.responses import JSONResponse


def error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)
