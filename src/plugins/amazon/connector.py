"""Amazon Selling Partner API: Login with Amazon tokens, orders and their items, buyer
information through Restricted Data Tokens, per-operation rate limits.

A seller's refresh token (a self-authorized private application, or one the website workflow
gave) is exchanged at Login with Amazon for hour-long access tokens, sent in the
`x-amz-access-token` header; AWS request signing is no longer required. Each operation has its
own token bucket per account (getOrders 0.0167/s, burst 20; getOrderItems 0.5/s, burst 30), and
each response states the account's actual rate in `x-amzn-RateLimit-Limit`: the platform paces
every operation to it. Buyer e-mail (an alias at marketplace.amazon.*), name and shipping address
need a Restricted Data Token, which only applications with the restricted roles get; without
one the orders come without buyer information. SP-API notifications travel through Amazon SQS or
EventBridge, not HTTP: this connector pulls, and its webhook address believes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

import httpx
from pydantic import Field, SecretStr

from brandloop.connectors import (
    Authorization,
    AuthorizationRevoked,
    BaseUrl,
    BuyerRecord,
    Capability,
    ConnectorConfig,
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
)

LWA_TOKEN_URL = "https://api.amazon.com/auth/o2/token"  # noqa: S105 (a URL)
ENDPOINTS = {
    "na": "https://sellingpartnerapi-na.amazon.com",
    "eu": "https://sellingpartnerapi-eu.amazon.com",
    "fe": "https://sellingpartnerapi-fe.amazon.com",
}
SANDBOX = {region: url.replace("https://", "https://sandbox.") for region, url in ENDPOINTS.items()}
ORDERS = "/orders/v0/orders"
RESTRICTED_DATA_TOKEN = "/tokens/2021-03-01/restrictedDataToken"  # noqa: S105 (a path)
PAGE_SIZE = 100
SETTLING = timedelta(minutes=2)
"""getOrders sees an update about two minutes after it happened and takes no later end."""
RATE_HEADER = "x-amzn-RateLimit-Limit"
QUOTAS = {
    "getOrders": Quota("getOrders", 0.0167, 20, RATE_HEADER),
    "getOrderItems": Quota("getOrderItems", 0.5, 30, RATE_HEADER),
    "createRestrictedDataToken": Quota("createRestrictedDataToken", 1.0, 10, RATE_HEADER),
}
STATUSES = {
    "PendingAvailability": "pending",
    "Pending": "pending",
    "Unshipped": "paid",
    "PartiallyShipped": "paid",
    "InvoiceUnconfirmed": "shipped",
    "Shipped": "shipped",
    "Canceled": "cancelled",
    "Unfulfillable": "cancelled",
}


class AmazonConfig(ConnectorConfig):
    lwa_client_id: str = Field(min_length=1, max_length=200)
    lwa_client_secret: SecretStr
    refresh_token: SecretStr
    """The seller's authorization of the application (Atzr|...)."""
    region: Literal["na", "eu", "fe"]
    marketplace_ids: list[str] = Field(min_length=1, max_length=50)
    restricted_data: bool = False
    """The application has the roles for buyer information: ask for Restricted Data Tokens."""
    sandbox: bool = False
    api_base_url: BaseUrl | None = None
    """The Selling Partner API host; by default the region's (or its sandbox)."""
    lwa_token_url: BaseUrl = LWA_TOKEN_URL

    @property
    def host(self) -> str:
        return self.api_base_url or (SANDBOX if self.sandbox else ENDPOINTS)[self.region]


def _config(config: ConnectorConfig) -> AmazonConfig:
    assert isinstance(config, AmazonConfig)
    return config


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _when(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _checked(response: httpx.Response) -> dict[str, Any]:
    """The body of a successful call; the SDK's errors otherwise."""
    raise_for_transient(response, "Amazon is throttling this operation")
    try:
        body = response.json()
    except ValueError as error:  # a proxy's page, not Amazon's answer
        raise PlatformError(f"Amazon answered {response.status_code} without JSON") from error
    if response.is_success:
        return dict(body)
    errors = body.get("errors") or [{}]
    message = f"{errors[0].get('code', response.status_code)}: {errors[0].get('message', '')}"[:300]
    if response.status_code == 403 and "expired" in message.lower():
        raise TokenExpired(message)
    raise PlatformError(message)


class AmazonConnector:
    key = "amazon"
    display_name = "Amazon"
    capabilities = frozenset({Capability.ORDERS, Capability.CUSTOMERS})
    config_model = AmazonConfig
    requests_per_second = 100.0
    """Amazon has no account-wide quota, only each operation's (QUOTAS): this is a safety cap."""
    authorization = Authorization.CREDENTIALS

    def quota(self, request: httpx.Request) -> Quota | None:
        path = request.url.path
        if path == RESTRICTED_DATA_TOKEN:
            return QUOTAS["createRestrictedDataToken"]
        if path.startswith(ORDERS):
            return QUOTAS["getOrderItems" if path.endswith("/orderItems") else "getOrders"]
        return None  # Login with Amazon

    def authorize_url(self, config: ConnectorConfig, *, redirect_uri: str, state: str) -> str:
        raise NotImplementedError("the seller's refresh token is part of the configuration")

    async def exchange_code(
        self, client: httpx.AsyncClient, config: ConnectorConfig, *, code: str, params: Mapping[str, str]
    ) -> Grant:
        return await self.refresh(client, config, None)

    async def refresh(self, client: httpx.AsyncClient, config: ConnectorConfig, grant: Grant | None) -> Grant:
        c = _config(config)
        response = await client.post(
            c.lwa_token_url,
            data={
                "grant_type": "refresh_token",
                "refresh_token": c.refresh_token.get_secret_value(),
                "client_id": c.lwa_client_id,
                "client_secret": c.lwa_client_secret.get_secret_value(),
            },
        )
        raise_for_transient(response, "Login with Amazon is throttling")
        try:
            body = response.json()
        except ValueError as error:
            raise PlatformError(f"Login with Amazon answered {response.status_code} without JSON") from error
        if response.status_code in (400, 401):
            # invalid_grant (the seller revoked it) or invalid_client: retrying will not help.
            raise AuthorizationRevoked(f"{body.get('error')}: {body.get('error_description', '')}"[:300])
        if not response.is_success:
            raise PlatformError(f"Login with Amazon answered {response.status_code}")
        return Grant(
            access_token=SecretStr(str(body["access_token"])),
            expires_at=datetime.now(UTC) + timedelta(seconds=int(body["expires_in"])),
        )

    async def _restricted_token(self, client: httpx.AsyncClient, c: AmazonConfig, grant: Grant) -> str | None:
        """A token that shows the orders' buyer information, or None when the application may not."""
        response = await client.post(
            f"{c.host}{RESTRICTED_DATA_TOKEN}",
            headers={"x-amz-access-token": grant.access_token.get_secret_value()},
            json={
                "restrictedResources": [
                    {"method": "GET", "path": ORDERS, "dataElements": ["buyerInfo", "shippingAddress"]}
                ]
            },
        )
        if response.status_code == 403 and "expired" not in response.text.lower():
            return None  # no restricted role: the orders come without buyer information
        return str(_checked(response)["restrictedDataToken"])

    async def fetch_orders(
        self,
        client: httpx.AsyncClient,
        config: ConnectorConfig,
        grant: Grant,
        window: TimeWindow,
        cursor: str | None,
    ) -> Page[OrderRecord]:
        c = _config(config)
        token = grant.access_token.get_secret_value()
        listing = token
        if c.restricted_data:
            listing = await self._restricted_token(client, c, grant) or token
        query: dict[str, str | int] = {"MarketplaceIds": ",".join(c.marketplace_ids)}
        if cursor:
            query["NextToken"] = cursor  # it carries the rest of the query
        else:
            until = min(window.until, datetime.now(UTC) - SETTLING)
            if until <= window.since:
                return Page([])
            query |= {
                "LastUpdatedAfter": _iso(window.since),
                "LastUpdatedBefore": _iso(until),
                "MaxResultsPerPage": PAGE_SIZE,
            }
        listed = _checked(
            await client.get(f"{c.host}{ORDERS}", params=query, headers={"x-amz-access-token": listing})
        )["payload"]
        records = [
            self._order(o, await self._items(client, c, token, str(o["AmazonOrderId"])))
            for o in listed.get("Orders") or []
        ]
        return Page(records, listed.get("NextToken") or None)

    async def _items(
        self, client: httpx.AsyncClient, c: AmazonConfig, token: str, order_id: str
    ) -> list[Any]:
        items: list[Any] = []
        following: str | None = None
        while True:
            response = await client.get(
                f"{c.host}{ORDERS}/{order_id}/orderItems",
                params={"NextToken": following} if following else None,
                headers={"x-amz-access-token": token},
            )
            payload = _checked(response)["payload"]
            items += payload.get("OrderItems") or []
            following = payload.get("NextToken")
            if not following:
                return items

    async def fetch_listings(
        self,
        client: httpx.AsyncClient,
        config: ConnectorConfig,
        grant: Grant,
        window: TimeWindow,
        cursor: str | None,
    ) -> Page[ListingObservation]:
        raise NotImplementedError("listings are not pulled from Amazon yet")

    def verify_webhook(
        self, config: ConnectorConfig, *, url: str, headers: Mapping[str, str], body: bytes
    ) -> bool:
        return False  # Amazon notifies through SQS or EventBridge: nothing arriving here is Amazon's

    def parse_webhook(self, config: ConnectorConfig, body: bytes) -> Sequence[WebhookEvent]:
        return []

    @staticmethod
    def _order(o: dict[str, Any], items: list[Any]) -> OrderRecord:
        total = o.get("OrderTotal") or {}
        currency = str(
            total.get("CurrencyCode") or (items[0]["ItemPrice"]["CurrencyCode"] if items else "USD")
        )

        def money(value: dict[str, Any] | None) -> int:
            return minor_units((value or {}).get("Amount") or 0, currency)

        lines = [
            LineRecord(
                sku=str(i.get("SellerSKU") or i["ASIN"]),
                product_name=str(i.get("Title") or "")[:500] or "-",
                quantity=int(i["QuantityOrdered"]),
                # ItemPrice is the price of the quantity ordered.
                unit_price=minor_units(
                    Decimal(str((i.get("ItemPrice") or {}).get("Amount") or 0))
                    / max(int(i["QuantityOrdered"]), 1),
                    currency,
                ),
            )
            for i in items
            if int(i.get("QuantityOrdered") or 0) > 0
        ]
        buyer = o.get("BuyerInfo") or {}
        address = o.get("ShippingAddress") or {}
        alias = buyer.get("BuyerEmail")
        return OrderRecord(
            external_id=str(o["AmazonOrderId"]),
            status=STATUSES.get(str(o["OrderStatus"]), "pending"),
            currency=currency,
            total=money(total) if total else sum(line.unit_price * line.quantity for line in lines),
            placed_at=_when(str(o["PurchaseDate"])),
            updated_at=_when(str(o["LastUpdateDate"])),
            lines=lines,
            shipping=sum(money(i.get("ShippingPrice")) for i in items),
            tax=sum(money(i.get("ItemTax")) for i in items),
            # The alias (…@marketplace.amazon.com) is this buyer's on Amazon: their amazon_buyer id.
            buyer=BuyerRecord(buyer_id=str(alias), name=buyer.get("BuyerName") or address.get("Name"))
            if alias
            else None,
            ship_region=_region(address.get("CountryCode"), address.get("StateOrRegion")),
        )


def _region(country: str | None, state: str | None) -> str | None:
    """ISO 3166-2 where Amazon gives a subdivision code (US-WA), else the country."""
    if not country:
        return None
    code = (state or "").strip().upper()
    return f"{country}-{code}" if re.fullmatch(r"[A-Z0-9]{1,3}", code) else country
