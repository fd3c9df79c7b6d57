"""A minimal connector for an imaginary marketplace: OAuth-style authorization, orders and
listings paged by time window and cursor, and webhooks signed with HMAC-SHA256 over the body."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import httpx
from pydantic import SecretStr

from brandloop.connectors import (
    Authorization,
    BuyerRecord,
    Capability,
    ConnectorConfig,
    EventKind,
    Grant,
    LineRecord,
    ListingObservation,
    OrderRecord,
    Page,
    Quota,
    TimeWindow,
    WebhookEvent,
)


class ExampleConfig(ConnectorConfig):
    base_url: str = "https://api.example-market.test"
    app_key: str
    app_secret: SecretStr


class ExampleConnector:
    key = "example"
    display_name = "Example Market"
    capabilities = frozenset({Capability.ORDERS, Capability.LISTINGS, Capability.WEBHOOKS})
    config_model = ExampleConfig
    requests_per_second = 20.0
    authorization = Authorization.REDIRECT

    def quota(self, request: httpx.Request) -> Quota | None:
        return None  # one quota for every call

    def authorize_url(self, config: ConnectorConfig, *, redirect_uri: str, state: str) -> str:
        assert isinstance(config, ExampleConfig)
        query = urlencode({"app_key": config.app_key, "redirect_uri": redirect_uri, "state": state})
        return f"{config.base_url}/authorize?{query}"

    async def exchange_code(
        self, client: httpx.AsyncClient, config: ConnectorConfig, *, code: str, params: Mapping[str, str]
    ) -> Grant:
        assert isinstance(config, ExampleConfig)
        response = await client.post(
            f"{config.base_url}/token",
            json={
                "app_key": config.app_key,
                "app_secret": config.app_secret.get_secret_value(),
                "code": code,
            },
        )
        response.raise_for_status()
        return self._grant(response.json())

    async def refresh(self, client: httpx.AsyncClient, config: ConnectorConfig, grant: Grant) -> Grant:
        assert isinstance(config, ExampleConfig) and grant.refresh_token is not None
        response = await client.post(
            f"{config.base_url}/token/refresh",
            json={"app_key": config.app_key, "refresh_token": grant.refresh_token.get_secret_value()},
        )
        response.raise_for_status()
        return self._grant(response.json())

    @staticmethod
    async def _page(
        client: httpx.AsyncClient,
        config: ConnectorConfig,
        grant: Grant,
        path: str,
        window: TimeWindow,
        cursor: str | None,
    ) -> dict[str, Any]:
        """One page of what changed in the window, the platform's way: a cursor and a bearer token."""
        assert isinstance(config, ExampleConfig)
        response = await client.get(
            f"{config.base_url}{path}",
            params={
                "since": window.since.isoformat(),
                "until": window.until.isoformat(),
                "cursor": cursor or "",
            },
            headers={"Authorization": f"Bearer {grant.access_token.get_secret_value()}"},
        )
        response.raise_for_status()
        return dict(response.json())

    async def fetch_orders(
        self,
        client: httpx.AsyncClient,
        config: ConnectorConfig,
        grant: Grant,
        window: TimeWindow,
        cursor: str | None,
    ) -> Page[OrderRecord]:
        body = await self._page(client, config, grant, "/orders", window, cursor)
        return Page([self._order(o) for o in body["orders"]], body.get("next_cursor"))

    async def fetch_listings(
        self,
        client: httpx.AsyncClient,
        config: ConnectorConfig,
        grant: Grant,
        window: TimeWindow,
        cursor: str | None,
    ) -> Page[ListingObservation]:
        body = await self._page(client, config, grant, "/listings", window, cursor)
        return Page(
            [
                ListingObservation(
                    sku=str(x["sku"]),
                    seller_id=str(x["seller"]),
                    price=int(x["price"]),
                    currency=str(x["currency"]),
                    observed_at=datetime.fromisoformat(str(x["seen_at"])),
                    url=x.get("url"),
                )
                for x in body["listings"]
            ],
            body.get("next_cursor"),
        )

    def verify_webhook(
        self, config: ConnectorConfig, *, url: str, headers: Mapping[str, str], body: bytes
    ) -> bool:
        assert isinstance(config, ExampleConfig)
        expected = hmac.new(config.app_secret.get_secret_value().encode(), body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, headers.get("x-signature", ""))

    def parse_webhook(self, config: ConnectorConfig, body: bytes) -> Sequence[WebhookEvent]:
        event = json.loads(body)
        kind = EventKind.ORDER if event["type"] == "order.updated" else EventKind.OTHER
        return [WebhookEvent(key=event["id"], kind=kind, payload=event)]

    @staticmethod
    def _grant(body: dict[str, object]) -> Grant:
        return Grant(
            access_token=SecretStr(str(body["access_token"])),
            refresh_token=SecretStr(str(body["refresh_token"])),
            expires_at=datetime.fromisoformat(str(body["expires_at"])),
        )

    @staticmethod
    def _order(o: dict[str, object]) -> OrderRecord:
        lines = o.get("lines") or []
        assert isinstance(lines, list)
        buyer = o.get("buyer") or {}
        assert isinstance(buyer, dict)
        return OrderRecord(
            external_id=str(o["id"]),
            status=str(o["status"]),
            currency=str(o["currency"]),
            total=int(str(o["total"])),
            placed_at=datetime.fromisoformat(str(o["placed_at"])),
            updated_at=datetime.fromisoformat(str(o["updated_at"])),
            lines=[
                LineRecord(str(x["sku"]), str(x["name"]), int(x["quantity"]), int(x["price"])) for x in lines
            ],
            buyer=BuyerRecord(buyer_id=buyer.get("id"), name=buyer.get("name")),
        )
