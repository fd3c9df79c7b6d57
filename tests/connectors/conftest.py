"""The example connector, installed with pip as a distribution of its own for these tests."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from connections_support import FAILURES, LISTINGS, ORDERS, serving
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from brandloop.connections import platforms, service
from brandloop.connections.platforms import RetryPolicy
from brandloop.observability import configure_logging

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "example_connector"


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The example connector installed with pip into a folder of its own, put on the path."""
    target = tmp_path_factory.mktemp("site")
    # Built from a copy: pip's build leaves files next to the sources it builds.
    source = shutil.copytree(EXAMPLE, tmp_path_factory.mktemp("src") / "example_connector")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(target),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    sys.path.insert(0, str(target))
    service.connectors.cache_clear()
    try:
        yield target
    finally:
        sys.path.remove(str(target))
        sys.modules.pop("example_connector", None)
        service.connectors.cache_clear()


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Platform requests retried as in production, without the production waits or pacing."""
    monkeypatch.setattr(
        platforms, "DEFAULT_POLICY", RetryPolicy(wait_initial=0.001, wait_max=0.01, longest_retry_after=0.05)
    )
    # Pacing to the platforms' real quotas would only slow the suite; test_platforms.py checks it.
    for connector in service.connectors().values():
        monkeypatch.setattr(type(connector), "requests_per_second", 1000.0)


@pytest.fixture
async def market() -> AsyncIterator[tuple[str, list[dict[str, object]]]]:
    """The example platform served on loopback (tokens, and the orders in `ORDERS`, two a page,
    by update time; `FAILURES` makes the next requests of a cursor fail); yields its URL and the
    token requests."""
    seen: list[dict[str, object]] = []
    LISTINGS.clear()

    async def listing(request: Request) -> JSONResponse:
        if request.headers.get("authorization") != "Bearer at-123":
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        cursor = request.query_params["cursor"]
        if FAILURES.get(cursor, 0) > 0:
            FAILURES[cursor] -= 1
            return JSONResponse({"error": "busy"}, status_code=503)
        since = datetime.fromisoformat(request.query_params["since"])
        until = datetime.fromisoformat(request.query_params["until"])
        inside = [o for o in ORDERS if since <= datetime.fromisoformat(str(o["updated_at"])) < until]
        start = int(cursor or 0)
        following = str(start + 2) if start + 2 < len(inside) else None
        return JSONResponse({"orders": inside[start : start + 2], "next_cursor": following})

    async def token(request: Request) -> JSONResponse:
        body = await request.json()
        seen.append(body)
        if body.get("code") != "c0de" or body.get("app_secret") != "s3cret-value":
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        return JSONResponse(
            {"access_token": "at-123", "refresh_token": "rt-456", "expires_at": "2026-12-01T00:00:00+00:00"}
        )

    async def refresh(request: Request) -> JSONResponse:
        body = await request.json()
        seen.append(body)
        if body != {"app_key": "k1", "refresh_token": "rt-456"}:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        return JSONResponse(
            {"access_token": "at-789", "refresh_token": "rt-000", "expires_at": "2027-01-01T00:00:00+00:00"}
        )

    async def listings(request: Request) -> JSONResponse:
        since = datetime.fromisoformat(request.query_params["since"])
        until = datetime.fromisoformat(request.query_params["until"])
        inside = [x for x in LISTINGS if since <= datetime.fromisoformat(str(x["seen_at"])) < until]
        return JSONResponse({"listings": inside, "next_cursor": None})

    routes = [
        Route("/listings", listings),
        Route("/token", token, methods=["POST"]),
        Route("/token/refresh", refresh, methods=["POST"]),
        Route("/orders", listing),
    ]
    async with serving(Starlette(routes=routes)) as url:
        yield url, seen


@pytest.fixture
def every_log_line(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> Iterator[Any]:
    """Logging as production configures it, at DEBUG; returns everything logged or printed."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging("DEBUG", json=True)
    caplog.set_level(logging.DEBUG)
    try:
        yield lambda: caplog.text + "".join(capfd.readouterr())
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
