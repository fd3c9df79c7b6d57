"""Shopee Open Platform v2: shop authorization, signed requests, orders, push messages.

Every call is signed with HMAC-SHA256 under the partner key, hex in lower case, over a base
string: partner_id + API path + timestamp for public calls (authorization, tokens), and
+ access_token + shop_id for a shop's calls. Access tokens last four hours; a refresh token is
good for thirty days and for one refresh only, so the platform stores each new grant at once.
Push messages carry `Authorization: HMAC-SHA256(push key, callback URL + "|" + body)`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
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

PRODUCTION = "https://partner.shopeemobile.com"
AUTHORIZE = "/api/v2/shop/auth_partner"
TOKEN = "/api/v2/auth/token/get"  # noqa: S105 (a path)
REFRESH = "/api/v2/auth/access_token/get"
ORDER_LIST = "/api/v2/order/get_order_list"
ORDER_DETAIL = "/api/v2/order/get_order_detail"
PAGE_SIZE = 50
"""get_order_detail takes at most 50 order numbers: one list page is one detail call."""
DETAIL_FIELDS = "buyer_user_id,buyer_username,item_list,total_amount,recipient_address,actual_shipping_fee"
REFRESH_TOKEN_DAYS = 30
EXPIRED_TOKEN = {"invalid_acceess_token", "invalid_access_token", "error_auth"}
"""Shopee's error codes for an access token it no longer takes (the first is its own spelling)."""

STATUSES = {
    "UNPAID": "pending",
    "INVOICE_PENDING": "pending",
    "READY_TO_SHIP": "paid",
    "PROCESSED": "paid",
    "RETRY_SHIP": "paid",
    "IN_CANCEL": "paid",
    "SHIPPED": "shipped",
    "TO_CONFIRM_RECEIVE": "shipped",
    "TO_RETURN": "completed",
    "COMPLETED": "completed",
    "CANCELLED": "cancelled",
}
PUSH_KINDS = {2: EventKind.AUTHORIZATION_REVOKED, 3: EventKind.ORDER}
"""Push codes: 2 a shop withdrew its authorization, 3 an order's status changed."""


class ShopeeConfig(ConnectorConfig):
    partner_id: int
    partner_key: SecretStr
    shop_id: int | None = None
    """The shop to connect; when given, an authorization for another shop is refused."""
    push_partner_key: SecretStr | None = None
    """The key push messages are signed with; the partner key when not set."""
    api_base_url: BaseUrl = PRODUCTION


def base_string(*parts: object) -> str:
    """partner_id, API path, timestamp (and access_token, shop_id for a shop's call), joined."""
    return "".join(str(p) for p in parts)


def sign(partner_key: str, *parts: object) -> str:
    """The lower-case hex HMAC-SHA256 of the base string of `parts`."""
    return hmac.new(partner_key.encode(), base_string(*parts).encode(), hashlib.sha256).hexdigest()


def push_signature(key: str, url: str, body: bytes) -> str:
    return hmac.new(key.encode(), url.encode() + b"|" + body, hashlib.sha256).hexdigest()


def _config(config: ConnectorConfig) -> ShopeeConfig:
    assert isinstance(config, ShopeeConfig)
    return config


def _when(seconds: object) -> datetime:
    return datetime.fromtimestamp(int(str(seconds)), UTC)


def _checked(response: httpx.Response, *, refreshing: bool = False) -> dict[str, Any]:
    """The body of a successful call; the SDK's errors otherwise."""
    raise_for_transient(response, "Shopee is throttling this shop")
    body: dict[str, Any] = response.json()
    error = body.get("error") or ""
    if not error:
        return body
    message = f"{error}: {body.get('message', '')}"[:300]
    if refreshing:
        raise AuthorizationRevoked(message)  # a refresh token Shopee refuses will not work again
    if error in EXPIRED_TOKEN:
        raise TokenExpired(message)
    raise PlatformError(message)


class ShopeeConnector:
    key = "shopee"
    display_name = "Shopee"
    capabilities = frozenset({Capability.ORDERS, Capability.CUSTOMERS, Capability.WEBHOOKS})
    config_model = ShopeeConfig
    requests_per_second = 10.0
    authorization = Authorization.REDIRECT

    def quota(self, request: httpx.Request) -> Quota | None:
        return None  # one quota for every call

    def authorize_url(self, config: ConnectorConfig, *, redirect_uri: str, state: str) -> str:
        c = _config(config)
        now = int(time.time())
        query: dict[str, str | int] = {
            "partner_id": c.partner_id,
            "timestamp": now,
            "sign": sign(c.partner_key.get_secret_value(), c.partner_id, AUTHORIZE, now),
            # Shopee passes no state through: it rides on the redirect, which gets code and shop_id.
            "redirect": f"{redirect_uri}?{urlencode({'state': state})}",
        }
        return f"{c.api_base_url}{AUTHORIZE}?{urlencode(query)}"

    async def _public(
        self, client: httpx.AsyncClient, c: ShopeeConfig, path: str, body: dict[str, Any]
    ) -> httpx.Response:
        now = int(time.time())
        query: dict[str, str | int] = {
            "partner_id": c.partner_id,
            "timestamp": now,
            "sign": sign(c.partner_key.get_secret_value(), c.partner_id, path, now),
        }
        return await client.post(f"{c.api_base_url}{path}", params=query, json=body)

    async def exchange_code(
        self, client: httpx.AsyncClient, config: ConnectorConfig, *, code: str, params: Mapping[str, str]
    ) -> Grant:
        c = _config(config)
        shop_id = params.get("shop_id", "")
        if not shop_id.isdigit() or (c.shop_id is not None and int(shop_id) != c.shop_id):
            raise PlatformError(f"Shopee authorized shop {shop_id!r}, not the configured one")
        response = await self._public(
            client, c, TOKEN, {"code": code, "shop_id": int(shop_id), "partner_id": c.partner_id}
        )
        return self._grant(_checked(response), shop_id)

    async def refresh(self, client: httpx.AsyncClient, config: ConnectorConfig, grant: Grant) -> Grant:
        c = _config(config)
        assert grant.refresh_token is not None
        shop_id = grant.extra["shop_id"]
        response = await self._public(
            client,
            c,
            REFRESH,
            {
                "refresh_token": grant.refresh_token.get_secret_value(),
                "shop_id": int(shop_id),
                "partner_id": c.partner_id,
            },
        )
        return self._grant(_checked(response, refreshing=True), shop_id)

    @staticmethod
    def _grant(body: dict[str, Any], shop_id: str) -> Grant:
        now = datetime.now(UTC)
        return Grant(
            access_token=SecretStr(str(body["access_token"])),
            refresh_token=SecretStr(str(body["refresh_token"])),
            expires_at=now + timedelta(seconds=int(body["expire_in"])),
            refresh_expires_at=now + timedelta(days=REFRESH_TOKEN_DAYS),
            extra={"shop_id": shop_id},
        )

    async def _shop_get(
        self, client: httpx.AsyncClient, c: ShopeeConfig, grant: Grant, path: str, params: dict[str, Any]
    ) -> dict[str, Any]:
        now, token, shop_id = int(time.time()), grant.access_token.get_secret_value(), grant.extra["shop_id"]
        common = {
            "partner_id": c.partner_id,
            "timestamp": now,
            "access_token": token,
            "shop_id": shop_id,
            "sign": sign(c.partner_key.get_secret_value(), c.partner_id, path, now, token, shop_id),
        }
        response = await client.get(f"{c.api_base_url}{path}", params={**common, **params})
        return dict(_checked(response).get("response") or {})

    async def fetch_orders(
        self,
        client: httpx.AsyncClient,
        config: ConnectorConfig,
        grant: Grant,
        window: TimeWindow,
        cursor: str | None,
    ) -> Page[OrderRecord]:
        c = _config(config)
        listed = await self._shop_get(
            client,
            c,
            grant,
            ORDER_LIST,
            {
                "time_range_field": "update_time",
                "time_from": int(window.since.timestamp()),
                "time_to": int(window.until.timestamp()),
                "page_size": PAGE_SIZE,
                "cursor": cursor or "",
            },
        )
        numbers = [str(o["order_sn"]) for o in listed.get("order_list") or []]
        records: list[OrderRecord] = []
        if numbers:
            detail = await self._shop_get(
                client,
                c,
                grant,
                ORDER_DETAIL,
                {"order_sn_list": ",".join(numbers), "response_optional_fields": DETAIL_FIELDS},
            )
            records = [self._order(o) for o in detail.get("order_list") or []]
        more = bool(listed.get("more")) and listed.get("next_cursor")
        return Page(records, str(listed["next_cursor"]) if more else None)

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
        key = (c.push_partner_key or c.partner_key).get_secret_value()
        if not hmac.compare_digest(push_signature(key, url, body), headers.get("authorization", "")):
            return False
        if not body:
            return True  # Shopee checks a new callback URL with an empty, signed push
        try:
            sent = int(json.loads(body)["timestamp"])
        except (ValueError, KeyError, TypeError):
            return False
        return abs(time.time() - sent) <= WEBHOOK_FRESHNESS

    def parse_webhook(self, config: ConnectorConfig, body: bytes) -> Sequence[WebhookEvent]:
        if not body:
            return []
        push = json.loads(body)
        if not isinstance(push, dict) or not isinstance(push.get("code"), int):
            raise ValueError("not a Shopee push message")
        # A push has no id of its own; a re-delivery is the same bytes.
        return [
            WebhookEvent(
                key=hashlib.sha256(body).hexdigest(),
                kind=PUSH_KINDS.get(push["code"], EventKind.OTHER),
                payload=push,
            )
        ]

    @staticmethod
    def _order(o: dict[str, Any]) -> OrderRecord:
        currency = str(o["currency"])
        lines = [
            LineRecord(
                sku=str(i.get("model_sku") or i.get("item_sku") or f"{i['item_id']}:{i.get('model_id', 0)}"),
                product_name=str(i.get("item_name") or "")[:500] or "-",
                quantity=int(i["model_quantity_purchased"]),
                unit_price=minor_units(
                    i.get("model_discounted_price") or i.get("model_original_price") or 0, currency
                ),
            )
            for i in o.get("item_list") or []
        ]
        address = o.get("recipient_address") or {}
        buyer_id = o.get("buyer_user_id")
        return OrderRecord(
            external_id=str(o["order_sn"]),
            status=STATUSES.get(str(o["order_status"]), "pending"),
            currency=currency,
            total=minor_units(o["total_amount"], currency),
            placed_at=_when(o["create_time"]),
            updated_at=_when(o["update_time"]),
            lines=lines,
            shipping=minor_units(o.get("actual_shipping_fee") or 0, currency),
            buyer=BuyerRecord(
                buyer_id=str(buyer_id) if buyer_id else None,
                name=unmasked(o.get("buyer_username")) or unmasked(address.get("name")),
                phone=unmasked(address.get("phone")),
            )
            if buyer_id or address
            else None,
        )
