"""The connector SDK: plugins found through entry points, installed as their own distributions."""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import httpx
import pytest
from pydantic import AfterValidator, SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from brandloop.connectors import (
    Capability,
    ConnectorConfig,
    ConnectorError,
    EventKind,
    TimeWindow,
    discover,
    secret_fields,
)


def test_an_installed_plugin_is_discovered(site: Path) -> None:
    connectors = discover()
    example = connectors["example"]
    assert example.display_name == "Example Market"
    assert example.capabilities == {Capability.ORDERS, Capability.LISTINGS, Capability.WEBHOOKS}
    assert secret_fields(example.config_model) == ["app_secret"]
    config = example.config_model(app_key="k1", app_secret="s3cret")
    assert "s3cret" not in repr(config)  # secrets never print
    url = example.authorize_url(config, redirect_uri="https://brand.example/cb", state="xyz")
    assert url.startswith("https://api.example-market.test/authorize?") and "state=xyz" in url


def test_webhooks_are_believed_only_when_signed(site: Path) -> None:
    example = discover()["example"]
    config = example.config_model(app_key="k1", app_secret="s3cret")
    body = json.dumps({"id": "evt-1", "type": "order.updated", "data": {"order": "O-1"}}).encode()
    signature = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert example.verify_webhook(
        config, url="https://x/webhooks/example/1", headers={"x-signature": signature}, body=body
    )
    tampered = body.replace(b"O-1", b"O-2")
    assert not example.verify_webhook(
        config, url="https://x", headers={"x-signature": signature}, body=tampered
    )
    assert not example.verify_webhook(config, url="https://x", headers={}, body=body)
    (event,) = example.parse_webhook(config, body)
    assert (event.key, event.kind) == ("evt-1", EventKind.ORDER) and event.payload["data"] == {"order": "O-1"}


async def test_orders_come_page_by_page_from_a_stand_in(site: Path) -> None:
    orders = [
        {"id": f"O-{n}", "status": "paid", "currency": "CNY", "total": 100 * n, "placed_at": "2026-11-01T00:00:00+08:00",
         "updated_at": "2026-11-01T00:00:00+08:00", "lines": [{"sku": "S", "name": "Tea", "quantity": 1, "price": 100 * n}],
         "buyer": {"id": f"b-{n}", "name": "Mei"}}
        for n in range(1, 4)
    ]  # fmt: skip

    async def listing(request: Request) -> JSONResponse:
        assert request.headers["authorization"] == "Bearer token-1"
        start = int(request.query_params["cursor"] or 0)
        following = str(start + 2) if start + 2 < len(orders) else None
        return JSONResponse({"orders": orders[start : start + 2], "next_cursor": following})

    async def token(request: Request) -> JSONResponse:
        body = await request.json()
        assert body == {"app_key": "k1", "app_secret": "s3cret", "code": "c0de"}
        return JSONResponse(
            {"access_token": "token-1", "refresh_token": "r-1", "expires_at": "2026-12-01T00:00:00+00:00"}
        )

    stand_in = Starlette(routes=[Route("/orders", listing), Route("/token", token, methods=["POST"])])
    example = discover()["example"]
    config = example.config_model(base_url="http://market", app_key="k1", app_secret="s3cret")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=stand_in)) as client:
        grant = await example.exchange_code(client, config, code="c0de", params={})
        window = TimeWindow(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC))
        first = await example.fetch_orders(client, config, grant, window, None)
        second = await example.fetch_orders(client, config, grant, window, first.next_cursor)
    assert [o.external_id for o in first.records] == ["O-1", "O-2"] and first.next_cursor == "2"
    assert [o.external_id for o in second.records] == ["O-3"] and second.next_cursor is None
    assert second.records[0].total == 300 and second.records[0].buyer is not None


def test_a_broken_plugin_is_named(tmp_path: Path) -> None:
    """A distribution whose entry point is not a connector: discovery says which one."""
    info = tmp_path / "broken_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[brandloop.connectors]\nbroken = json:dumps\n")
    sys.path.insert(0, str(tmp_path))
    try:
        with pytest.raises(ConnectorError, match=r"'broken'.*does not implement"):
            discover()
    finally:
        sys.path.remove(str(tmp_path))


def test_secret_fields_are_found_however_they_are_declared() -> None:
    class Config(ConnectorConfig):
        plain: str
        key: SecretStr
        optional_key: SecretStr | None = None
        checked_key: Annotated[SecretStr, AfterValidator(lambda v: v)] | None = None
        note: Annotated[str, AfterValidator(lambda v: v)] = ""

    assert secret_fields(Config) == ["key", "optional_key", "checked_key"]
