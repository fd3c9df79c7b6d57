"""TikTok Shop Partner API (202309 versions): seller authorization, signed requests, orders,
webhooks.

A request's `sign` is HMAC-SHA256 under the app secret, hex, over
app_secret + path + its query parameters but `sign` and `access_token`, sorted by name, each
name followed by its value + the raw body (unless multipart) + app_secret. The access token
travels in the `x-tts-access-token` header. Tokens come from the auth host; a shop's calls name
the shop by its cipher. Webhooks carry `Authorization: HMAC-SHA256(app_secret, app_key + body)`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import httpx
from pydantic import SecretStr

from brandloop.connectors import (
    WEBHOOK_FRESHNESS,
    Authorization,
    AuthorizationRevoked,
    BaseUrl,
    BuyerRecord,
    Capability,
    ConnectorConfig,
    EventKind,
    Grant,
    LineRecord,
    ListingObservation,
    OrderRecord,
    Page,
    PlatformError,
    Quota,
    TimeWindow,
    TokenExpired,
    WebhookEvent,
    minor_units,
    raise_for_transient,
    unmasked,
)

API = "https://open-api.tiktokglobalshop.com"
AUTH = "https://auth.tiktok-shops.com"
AUTHORIZE = "/oauth/authorize"
TOKEN = "/api/v2/token/get"  # noqa: S105 (a path)
REFRESH = "/api/v2/token/refresh"
SHOPS = "/authorization/202309/shops"
ORDER_SEARCH = "/order/202309/orders/search"
PAGE_SIZE = 50
EXPIRED_TOKEN = {105001, 105002}
"""Codes for an access token TikTok Shop no longer takes (invalid, expired)."""

STATUSES = {
    "UNPAID": "pending",
    "ON_HOLD": "paid",
    "AWAITING_SHIPMENT": "paid",
    "PARTIALLY_SHIPPING": "paid",
    "AWAITING_COLLECTION": "paid",
    "IN_TRANSIT": "shipped",
    "DELIVERED": "shipped",
    "COMPLETED": "completed",
    "CANCELLED": "cancelled",
}
WEBHOOK_KINDS = {1: EventKind.ORDER, 2: EventKind.ORDER, 6: EventKind.AUTHORIZATION_REVOKED}
"""Webhook types: 1 order status changed, 2 a cancellation, return or refund, 6 the seller
withdrew its authorization."""


class TikTokShopConfig(ConnectorConfig):
    app_key: str
    app_secret: SecretStr
    shop_cipher: str | None = None
    """The shop to connect; the first authorized shop when not given."""
    api_base_url: BaseUrl = API
    auth_base_url: BaseUrl = AUTH


def sign(app_secret: str, path: str, params: Mapping[str, object], body: bytes = b"") -> str:
    """The `sign` of a request to `path` with these query parameters and raw body."""
    pairs = "".join(f"{k}{params[k]}" for k in sorted(params) if k not in ("sign", "access_token"))
    message = app_secret.encode() + path.encode() + pairs.encode() + body + app_secret.encode()
    return hmac.new(app_secret.encode(), message, hashlib.sha256).hexdigest()


def webhook_signature(app_key: str, app_secret: str, body: bytes) -> str:
    return hmac.new(app_secret.encode(), app_key.encode() + body, hashlib.sha256).hexdigest()


def _config(config: ConnectorConfig) -> TikTokShopConfig:
    assert isinstance(config, TikTokShopConfig)
    return config


def _checked(response: httpx.Response, *, refreshing: bool = False) -> dict[str, Any]:
    """The `data` of a successful call; the SDK's errors otherwise."""
    raise_for_transient(response, "TikTok Shop is throttling this app")
    body: dict[str, Any] = response.json()
    code = body.get("code")
    if code == 0:
        return dict(body.get("data") or {})
    message = f"{code}: {body.get('message', '')}"[:300]
    if refreshing:
        raise AuthorizationRevoked(message)
    if code in EXPIRED_TOKEN:
        raise TokenExpired(message)
    raise PlatformError(message)


class TikTokShopConnector:
    key = "tiktok_shop"
    display_name = "TikTok Shop"
    capabilities = frozenset({Capability.ORDERS, Capability.CUSTOMERS, Capability.WEBHOOKS})
    config_model = TikTokShopConfig
    requests_per_second = 20.0
    authorization = Authorization.REDIRECT

    def quota(self, request: httpx.Request) -> Quota | None:
        return None  # one quota for every call

    def authorize_url(self, config: ConnectorConfig, *, redirect_uri: str, state: str) -> str:
        # TikTok Shop sends the seller to the redirect URL registered with the app, with code and state.
        c = _config(config)
        return f"{c.auth_base_url}{AUTHORIZE}?{urlencode({'app_key': c.app_key, 'state': state})}"

    async def _token(
        self, client: httpx.AsyncClient, c: TikTokShopConfig, path: str, params: dict[str, str]
    ) -> dict[str, Any]:
        query = {"app_key": c.app_key, "app_secret": c.app_secret.get_secret_value(), **params}
        return _checked(
            await client.get(f"{c.auth_base_url}{path}", params=query), refreshing=path == REFRESH
        )

    async def exchange_code(
        self, client: httpx.AsyncClient, config: ConnectorConfig, *, code: str, params: Mapping[str, str]
    ) -> Grant:
        c = _config(config)
        data = await self._token(client, c, TOKEN, {"auth_code": code, "grant_type": "authorized_code"})
        grant = self._grant(data, {})
        shops = (await self._call(client, c, grant, "GET", SHOPS, {})).get("shops") or []
        ciphers = [str(s["cipher"]) for s in shops]
        cipher = (
            c.shop_cipher
            if c.shop_cipher in ciphers
            else (None if c.shop_cipher else next(iter(ciphers), None))
        )
        if cipher is None:
            raise PlatformError("the seller did not authorize the configured shop")
        return self._grant(data, {"shop_cipher": cipher, "seller_name": str(data.get("seller_name", ""))})

    async def refresh(self, client: httpx.AsyncClient, config: ConnectorConfig, grant: Grant) -> Grant:
        c = _config(config)
        assert grant.refresh_token is not None
        data = await self._token(
            client,
            c,
            REFRESH,
            {"refresh_token": grant.refresh_token.get_secret_value(), "grant_type": "refresh_token"},
        )
        return self._grant(data, grant.extra)

    @staticmethod
    def _grant(data: dict[str, Any], extra: Mapping[str, str]) -> Grant:
        return Grant(
            access_token=SecretStr(str(data["access_token"])),
            refresh_token=SecretStr(str(data["refresh_token"])),
            expires_at=datetime.fromtimestamp(int(data["access_token_expire_in"]), UTC),
            refresh_expires_at=datetime.fromtimestamp(int(data["refresh_token_expire_in"]), UTC),
            extra=dict(extra),
        )

    async def _call(
        self,
        client: httpx.AsyncClient,
        c: TikTokShopConfig,
        grant: Grant,
        method: str,
        path: str,
        params: dict[str, object],
        body: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        raw = json.dumps(body, separators=(",", ":")).encode() if body is not None else b""
        query: dict[str, object] = {"app_key": c.app_key, "timestamp": int(time.time()), **params}
        query["sign"] = sign(c.app_secret.get_secret_value(), path, query, raw)
        response = await client.request(
            method,
            f"{c.api_base_url}{path}",
            params={k: str(v) for k, v in query.items()},
            content=raw or None,
            headers={
                "x-tts-access-token": grant.access_token.get_secret_value(),
                "content-type": "application/json",
            },
        )
        return _checked(response)

    async def fetch_orders(
        self,
        client: httpx.AsyncClient,
        config: ConnectorConfig,
        grant: Grant,
        window: TimeWindow,
        cursor: str | None,
    ) -> Page[OrderRecord]:
        c = _config(config)
        params: dict[str, object] = {
            "shop_cipher": grant.extra["shop_cipher"],
            "page_size": PAGE_SIZE,
            "sort_field": "update_time",
            "sort_order": "ASC",
        }
        if cursor:
            params["page_token"] = cursor
        data = await self._call(
            client,
            c,
            grant,
            "POST",
            ORDER_SEARCH,
            params,
            {
                "update_time_ge": int(window.since.timestamp()),
                "update_time_lt": int(window.until.timestamp()) + 1,
            },
        )
        orders = [self._order(o) for o in data.get("orders") or []]
        return Page(orders, str(data["next_page_token"]) if data.get("next_page_token") else None)

    async def fetch_listings(
        self,
        client: httpx.AsyncClient,
        config: ConnectorConfig,
        grant: Grant,
        window: TimeWindow,
        cursor: str | None,
    ) -> Page[ListingObservation]:
        raise NotImplementedError("listings come with the conflicts issue")

    def verify_webhook(
        self, config: ConnectorConfig, *, url: str, headers: Mapping[str, str], body: bytes
    ) -> bool:
        c = _config(config)
        expected = webhook_signature(c.app_key, c.app_secret.get_secret_value(), body)
        if not hmac.compare_digest(expected, headers.get("authorization", "")):
            return False
        try:
            sent = int(json.loads(body)["timestamp"])
        except (ValueError, KeyError, TypeError):
            return False
        return abs(time.time() - sent) <= WEBHOOK_FRESHNESS

    def parse_webhook(self, config: ConnectorConfig, body: bytes) -> Sequence[WebhookEvent]:
        event = json.loads(body)
        if not isinstance(event, dict) or not event.get("tts_notification_id"):
            raise ValueError("not a TikTok Shop webhook")
        kind = (
            WEBHOOK_KINDS.get(event["type"], EventKind.OTHER)
            if isinstance(event.get("type"), int)
            else EventKind.OTHER
        )
        return [WebhookEvent(key=str(event["tts_notification_id"]), kind=kind, payload=event)]

    @staticmethod
    def _order(o: dict[str, Any]) -> OrderRecord:
        payment = o.get("payment") or {}
        currency = str(payment["currency"])
        amount = lambda name: minor_units(payment.get(name) or 0, currency)  # noqa: E731
        # A line item is one unit; the same SKU bought twice is two line items.
        lines = [
            LineRecord(
                sku=str(i.get("seller_sku") or i.get("sku_id")),
                product_name=str(i.get("product_name") or "")[:500] or "-",
                quantity=1,
                unit_price=minor_units(i.get("sale_price") or 0, currency),
            )
            for i in o.get("line_items") or []
        ]
        address = o.get("recipient_address") or {}
        return OrderRecord(
            external_id=str(o["id"]),
            status=STATUSES.get(str(o["status"]), "pending"),
            currency=currency,
            total=amount("total_amount"),
            placed_at=datetime.fromtimestamp(int(o["create_time"]), UTC),
            updated_at=datetime.fromtimestamp(int(o["update_time"]), UTC),
            lines=lines,
            subtotal=amount("sub_total"),
            shipping=amount("shipping_fee"),
            tax=amount("tax"),
            discount=amount("seller_discount") + amount("platform_discount"),
            buyer=BuyerRecord(
                buyer_id=str(o["user_id"]) if o.get("user_id") else None,
                name=unmasked(address.get("name")),
                email=unmasked(o.get("buyer_email")),
                phone=unmasked(address.get("phone_number")),
            ),
        )
