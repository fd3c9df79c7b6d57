"""A local stand-in for Amazon's Selling Partner API and Login with Amazon, for tests and the
demo: a small ASGI app.

Login with Amazon exchanges a known refresh token (with the right client id and secret) for
access tokens that expire; the Orders API takes them in `x-amz-access-token`, refuses an end of
window later than two minutes ago, pages by an opaque NextToken (which then carries the query),
answers order items (paged too), shows buyer information and shipping addresses only to a
Restricted Data Token, which only an application with the restricted role gets; every operation
has its own token bucket, stated in `x-amzn-RateLimit-Limit`, throttled with 429, and calls fail
now and then with a 500 (seeded, so a test run is repeatable).
"""

from __future__ import annotations

import base64
import json
import random
import secrets
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from brandloop_plugins.amazon.connector import ORDERS, RESTRICTED_DATA_TOKEN, SETTLING

MARKETPLACE = "ATVPDKIKX0DER"
"""amazon.com"""
ITEMS_PAGE = 2


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def sample_orders(count: int, *, start: datetime, seed: int = 7) -> list[dict[str, Any]]:
    """`count` orders as getOrders shows them to a Restricted Data Token (with `items`, as
    getOrderItems answers), updated one after another from `start`."""
    rng = random.Random(seed)
    orders = []
    for n in range(count):
        at = start + timedelta(seconds=41 * n)
        buyer = rng.randrange(1, max(count // 3, 2))
        items: list[dict[str, Any]] = [
            {
                "ASIN": f"B0TEA{k:05d}",
                "SellerSKU": f"TEA-{(n + k) % 9}",
                "OrderItemId": f"{n:06d}{k:02d}",
                "Title": f"Jasmine tea {(n + k) % 9}",
                "QuantityOrdered": (quantity := rng.randrange(1, 4)),
                "ItemPrice": {"CurrencyCode": "USD", "Amount": f"{rng.randrange(5, 90) * quantity}.99"},
                "ShippingPrice": {"CurrencyCode": "USD", "Amount": "3.00" if k == 0 else "0.00"},
                "ItemTax": {"CurrencyCode": "USD", "Amount": "0.50"},
            }
            for k in range(rng.choice([1, 1, 2, 3]))
        ]
        total = sum(float(i["ItemPrice"]["Amount"]) + float(i["ShippingPrice"]["Amount"]) for i in items)
        orders.append(
            {
                "AmazonOrderId": f"113-{n:07d}-{seed:07d}",
                "PurchaseDate": _iso(at - timedelta(minutes=10)),
                "LastUpdateDate": _iso(at),
                "OrderStatus": rng.choice(["Unshipped", "Shipped", "Shipped", "Pending", "Canceled"]),
                "MarketplaceId": MARKETPLACE,
                "OrderTotal": {"CurrencyCode": "USD", "Amount": f"{total:.2f}"},
                "BuyerInfo": {
                    "BuyerEmail": f"{buyer:04d}kq7v@marketplace.amazon.com",
                    "BuyerName": f"Buyer {buyer}",
                },
                "ShippingAddress": {"Name": f"Buyer {buyer}", "StateOrRegion": "WA", "CountryCode": "US"},
                "items": items,
            }
        )
    return orders


@dataclass
class Bucket:
    rate: float
    burst: int
    tokens: float = 0.0
    at: float = 0.0

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate) if self.at else self.burst
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


@dataclass
class AmazonStandIn:
    client_id: str
    client_secret: str
    refresh_token: str
    orders: list[dict[str, Any]] = field(default_factory=list)
    restricted_role: bool = False
    """The application may have Restricted Data Tokens (buyer information)."""
    access_seconds: int = 3600
    failure_rate: float = 0.0
    rates: dict[str, tuple[float, int]] = field(
        default_factory=lambda: {
            "getOrders": (1000.0, 1000),
            "getOrderItems": (1000.0, 1000),
            "rdt": (1000.0, 1000),
        }
    )
    """Each operation's rate (a second) and burst: Amazon's are far lower; tests choose."""
    seed: int = 1
    access: dict[str, float] = field(default_factory=dict)
    """Access and restricted data tokens, and when they expire."""
    restricted: set[str] = field(default_factory=set)
    calls: list[str] = field(default_factory=list)
    buckets: dict[str, Bucket] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.random = random.Random(self.seed)
        self.buckets = {op: Bucket(rate, burst) for op, (rate, burst) in self.rates.items()}
        self.app = Starlette(
            routes=[
                Route("/auth/o2/token", self.token, methods=["POST"]),
                Route(RESTRICTED_DATA_TOKEN, self.restricted_data_token, methods=["POST"]),
                Route(ORDERS, self.get_orders),
                Route(ORDERS + "/{order_id}/orderItems", self.get_order_items),
            ]
        )

    def expire_access_tokens(self) -> None:
        self.access = {token: 0.0 for token in self.access}

    # -- Login with Amazon ---------------------------------------------------------------------

    async def token(self, request: Request) -> JSONResponse:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return JSONResponse(
                {"error": "invalid_client", "error_description": "Client authentication failed"},
                status_code=401,
            )
        if form.get("grant_type") != "refresh_token" or form.get("refresh_token") != self.refresh_token:
            return JSONResponse(
                {"error": "invalid_grant", "error_description": "The request has an invalid grant parameter"},
                status_code=400,
            )
        access = f"Atza|{secrets.token_urlsafe(24)}"
        self.access[access] = time.time() + self.access_seconds
        return JSONResponse(
            {"access_token": access, "token_type": "bearer", "expires_in": self.access_seconds,
             "refresh_token": self.refresh_token}
        )  # fmt: skip

    # -- the Selling Partner API ----------------------------------------------------------------

    @staticmethod
    def _error(
        status: int, code: str, message: str, operation: str | None = None, rate: float = 0
    ) -> JSONResponse:
        headers = {"x-amzn-RateLimit-Limit": f"{rate:g}"} if operation else {}
        return JSONResponse({"errors": [{"code": code, "message": message, "details": ""}]}, status, headers)

    def _call(self, request: Request, operation: str) -> tuple[JSONResponse | None, str]:
        """None and the token when the call may go ahead; Amazon's answer otherwise."""
        rate = self.rates[operation][0]
        token = request.headers.get("x-amz-access-token", "")
        if token not in self.access:
            return self._error(
                403, "Unauthorized", "Access to requested resource is denied.", operation, rate
            ), token
        if self.access[token] < time.time():
            return self._error(
                403, "Unauthorized", "The access token you provided has expired.", operation, rate
            ), token
        if not self.buckets[operation].take():
            return self._error(429, "QuotaExceeded", "You exceeded your quota for the requested resource.",
                               operation, rate), token  # fmt: skip
        if self.random.random() < self.failure_rate:
            return self._error(
                500, "InternalFailure", "We encountered an internal error.", operation, rate
            ), token
        self.calls.append(operation)
        return None, token

    def _ok(self, operation: str, body: dict[str, Any]) -> JSONResponse:
        return JSONResponse(body, headers={"x-amzn-RateLimit-Limit": f"{self.rates[operation][0]:g}"})

    async def restricted_data_token(self, request: Request) -> JSONResponse:
        refused, _ = self._call(request, "rdt")
        if refused is not None:
            return refused
        if not self.restricted_role:
            return self._error(403, "Unauthorized", "Application does not have access to one or more requested "
                               "data elements: [buyerInfo, shippingAddress]")  # fmt: skip
        token = f"Atz.sprdt|{secrets.token_urlsafe(24)}"
        self.access[token] = time.time() + 3600
        self.restricted.add(token)
        return self._ok("rdt", {"restrictedDataToken": token, "expiresIn": 3600})

    async def get_orders(self, request: Request) -> JSONResponse:
        refused, token = self._call(request, "getOrders")
        if refused is not None:
            return refused
        q = dict(request.query_params)
        marketplaces = set(q.get("MarketplaceIds", "").split(","))
        if "NextToken" in q:
            try:
                q = {**json.loads(base64.urlsafe_b64decode(q["NextToken"])), **q}
            except ValueError:
                return self._error(400, "InvalidInput", "Invalid NextToken.")
        try:
            since, until = (
                datetime.fromisoformat(q["LastUpdatedAfter"]),
                datetime.fromisoformat(q["LastUpdatedBefore"]),
            )
            size, start = int(q.get("MaxResultsPerPage", 100)), int(q.get("offset", 0))
        except (KeyError, ValueError):
            return self._error(400, "InvalidInput", "LastUpdatedAfter and LastUpdatedBefore are required.")
        if until > datetime.now(UTC) - SETTLING or not 0 < size <= 100 or not marketplaces - {""}:
            return self._error(400, "InvalidInput", "LastUpdatedBefore must be at least two minutes ago; "
                               "MaxResultsPerPage 1 to 100; MarketplaceIds required.")  # fmt: skip
        inside = sorted(
            (o for o in self.orders
             if o["MarketplaceId"] in marketplaces and since <= datetime.fromisoformat(o["LastUpdateDate"]) <= until),
            key=lambda o: (o["LastUpdateDate"], o["AmazonOrderId"]),
        )  # fmt: skip
        page = inside[start : start + size]
        shown = [self._shown(o, token in self.restricted) for o in page]
        body: dict[str, Any] = {"Orders": shown, "LastUpdatedBefore": _iso(until)}
        if start + size < len(inside):
            carried = {"LastUpdatedAfter": q["LastUpdatedAfter"], "LastUpdatedBefore": q["LastUpdatedBefore"],
                       "MaxResultsPerPage": size, "offset": start + size}  # fmt: skip
            body["NextToken"] = base64.urlsafe_b64encode(json.dumps(carried).encode()).decode()
        return self._ok("getOrders", {"payload": body})

    @staticmethod
    def _shown(order: dict[str, Any], restricted: bool) -> dict[str, Any]:
        shown = {k: v for k, v in order.items() if k != "items"}
        if not restricted:
            shown.pop("BuyerInfo", None)
            shown["ShippingAddress"] = {"StateOrRegion": order["ShippingAddress"]["StateOrRegion"],
                                        "CountryCode": order["ShippingAddress"]["CountryCode"]}  # fmt: skip
        return shown

    async def get_order_items(self, request: Request) -> JSONResponse:
        refused, _ = self._call(request, "getOrderItems")
        if refused is not None:
            return refused
        order_id = request.path_params["order_id"]
        found = next((o for o in self.orders if o["AmazonOrderId"] == order_id), None)
        if found is None:
            return self._error(404, "NotFound", "The order was not found.")
        start = int(request.query_params.get("NextToken") or 0)
        body: dict[str, Any] = {
            "AmazonOrderId": order_id,
            "OrderItems": found["items"][start : start + ITEMS_PAGE],
        }
        if start + ITEMS_PAGE < len(found["items"]):
            body["NextToken"] = str(start + ITEMS_PAGE)
        return self._ok("getOrderItems", {"payload": body})


def main() -> None:
    """`python -m brandloop_plugins.amazon.standin [port]`: a local Amazon with 300 orders from the
    last hours, for trying a connection with `make serve` (docs/connectors.md, "Trying it")."""
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9103
    amazon = AmazonStandIn(
        client_id="amzn1.application-oa2-client.standin",
        client_secret="stand-in-client-secret",
        refresh_token="Atzr|stand-in-refresh-token",
        orders=sample_orders(300, start=datetime.now(UTC) - timedelta(hours=4)),
        restricted_role=True,
    )
    base = f"http://127.0.0.1:{port}"
    print(
        "createConnection config: "
        + json.dumps(
            {
                "lwa_client_id": amazon.client_id, "lwa_client_secret": amazon.client_secret,
                "refresh_token": amazon.refresh_token, "region": "na", "marketplace_ids": [MARKETPLACE],
                "restricted_data": True, "api_base_url": base, "lwa_token_url": f"{base}/auth/o2/token",
            }
        )
    )  # fmt: skip
    uvicorn.run(amazon.app, host="127.0.0.1", port=port)


if __name__ == "__main__":
    main()
