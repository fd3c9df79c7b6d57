"""A local stand-in for the TikTok Shop Partner API (202309), for tests and the demo: one ASGI
app serving both the auth host and the API host.

It checks every request's `sign` and timestamp as TikTok Shop does, issues one-time
authorization codes and expiring access tokens, lists the authorized shop and its cipher, pages
the order search by page token, throttles with 429 and fails now and then with a 500 (seeded,
so a test run is repeatable).
"""

from __future__ import annotations

import hmac
import json
import random
import secrets
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from brandloop_plugins.tiktok_shop.connector import (
    AUTHORIZE,
    ORDER_SEARCH,
    REFRESH,
    SHOPS,
    TOKEN,
    sign,
    webhook_signature,
)

FRESH_SECONDS = 300


def sample_orders(count: int, *, start: datetime, seed: int = 11) -> list[dict[str, Any]]:
    """`count` orders as the order search returns them, updated one after another from `start`."""
    rng = random.Random(seed)
    orders = []
    for n in range(count):
        at = int((start + timedelta(seconds=41 * n)).timestamp())
        units = rng.randrange(1, 3)
        price = f"{rng.randrange(20, 300)}.{rng.choice(['00', '50', '99'])}"
        buyer = rng.randrange(1, max(count // 3, 2))
        subtotal = f"{float(price) * units:.2f}"
        orders.append(
            {
                "id": f"5769{n:012d}",
                "status": rng.choice(["AWAITING_SHIPMENT", "IN_TRANSIT", "COMPLETED", "UNPAID", "CANCELLED"]),
                "create_time": at - 300,
                "update_time": at,
                "user_id": f"7{buyer:017d}",
                "buyer_email": f"v2{buyer:08d}@scs.tiktokw.us",
                "recipient_address": {"name": "M** L*", "phone_number": "(+1)213*****43"},
                "payment": {
                    "currency": "USD",
                    "sub_total": subtotal,
                    "shipping_fee": "4.99",
                    "tax": "0",
                    "seller_discount": "0",
                    "platform_discount": "0",
                    "total_amount": f"{float(subtotal) + 4.99:.2f}",
                },
                "line_items": [
                    {
                        "id": f"5769{n:012d}{u}",
                        "sku_id": f"17{n % 5:04d}",
                        "seller_sku": f"MUG-{n % 5}",
                        "product_name": f"Stoneware mug {n % 5}",
                        "sale_price": price,
                        "original_price": price,
                        "currency": "USD",
                    }
                    for u in range(units)
                ],
            }
        )
    return orders


@dataclass
class TikTokShopStandIn:
    app_key: str
    app_secret: str
    shop_cipher: str = "ROW_stand_in_cipher"
    orders: list[dict[str, Any]] = field(default_factory=list)
    access_seconds: int = 7 * 86400
    failure_rate: float = 0.0
    """The share of API calls answered with a 500."""
    per_second: int = 1000
    """API calls in one second before it is answered 429."""
    seed: int = 1
    redirect_uri: str = "http://127.0.0.1:8000/connectors/callback"
    """The redirect URL registered with the app: where consent sends the seller back."""
    codes: set[str] = field(default_factory=set)
    access: dict[str, float] = field(default_factory=dict)
    refresh_tokens: set[str] = field(default_factory=set)
    calls: list[str] = field(default_factory=list)
    _second: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        self.random = random.Random(self.seed)
        self.app = Starlette(
            routes=[
                Route(AUTHORIZE, self.authorize),
                Route(TOKEN, self.token),
                Route(REFRESH, self.refresh),
                Route(SHOPS, self.shops),
                Route(ORDER_SEARCH, self.search, methods=["POST"]),
            ]
        )

    # -- what tests and the demo drive --------------------------------------------------------

    def issue_code(self) -> str:
        code = f"TTP_{secrets.token_urlsafe(16)}"
        self.codes.add(code)
        return code

    def expire_access_tokens(self) -> None:
        self.access = {token: 0.0 for token in self.access}

    def webhook(self, message: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
        """A webhook as TikTok Shop sends it: its body and headers."""
        body = json.dumps(message).encode()
        return body, {
            "authorization": webhook_signature(self.app_key, self.app_secret, body),
            "content-type": "application/json",
        }

    # -- the platform --------------------------------------------------------------------------

    @staticmethod
    def _error(code: int, message: str, status: int = 200) -> JSONResponse:
        return JSONResponse(
            {"code": code, "message": message, "request_id": secrets.token_hex(8)}, status_code=status
        )

    @staticmethod
    def _ok(data: dict[str, Any]) -> JSONResponse:
        return JSONResponse(
            {"code": 0, "message": "Success", "request_id": secrets.token_hex(8), "data": data}
        )

    def _grant(self) -> dict[str, Any]:
        access, refresh = f"TTP_at{secrets.token_hex(12)}", f"TTP_rt{secrets.token_hex(12)}"
        expires = time.time() + self.access_seconds
        self.access[access] = expires
        self.refresh_tokens.add(refresh)
        return {
            "access_token": access,
            "access_token_expire_in": int(expires),
            "refresh_token": refresh,
            "refresh_token_expire_in": int(time.time() + 60 * 86400),
            "open_id": "stand-in-open-id",
            "seller_name": "Stand-in Seller",
            "seller_base_region": "US",
            "user_type": 0,
        }

    async def authorize(self, request: Request) -> Response:
        """The seller's consent: back to the app's redirect URL with a code and the state."""
        if request.query_params.get("app_key") != self.app_key:
            return self._error(36004002, "invalid app_key", 400)
        redirect = self.redirect_uri
        state = request.query_params.get("state", "")
        return RedirectResponse(f"{redirect}?code={self.issue_code()}&state={state}", status_code=302)

    def _app(self, request: Request) -> bool:
        q = request.query_params
        return q.get("app_key") == self.app_key and hmac.compare_digest(
            q.get("app_secret", ""), self.app_secret
        )

    async def token(self, request: Request) -> JSONResponse:
        q = request.query_params
        if not self._app(request) or q.get("grant_type") != "authorized_code":
            return self._error(36004002, "invalid app or grant_type")
        if q.get("auth_code") not in self.codes:
            return self._error(36004004, "invalid auth_code")
        self.codes.discard(q["auth_code"])
        return self._ok(self._grant())

    async def refresh(self, request: Request) -> JSONResponse:
        q = request.query_params
        if not self._app(request) or q.get("grant_type") != "refresh_token":
            return self._error(36004002, "invalid app or grant_type")
        if q.get("refresh_token") not in self.refresh_tokens:
            return self._error(36004005, "invalid refresh_token")
        return self._ok(self._grant())

    async def _signed(self, request: Request) -> JSONResponse | None:
        q = dict(request.query_params)
        if q.get("app_key") != self.app_key:
            return self._error(106001, "invalid app_key", 401)
        try:
            timestamp = int(q.get("timestamp", ""))
        except ValueError:
            return self._error(106002, "invalid timestamp", 401)
        if abs(time.time() - timestamp) > FRESH_SECONDS:
            return self._error(106003, "timestamp expired", 401)
        expected = sign(self.app_secret, request.url.path, q, await request.body())
        if not hmac.compare_digest(expected, q.get("sign", "")):
            return self._error(106001, "signature is invalid", 401)
        token = request.headers.get("x-tts-access-token", "")
        if token not in self.access:
            return self._error(105001, "access token is invalid", 401)
        if self.access[token] < time.time():
            return self._error(105002, "access token is expired", 401)
        second = int(time.time())
        count = self._second[1] + 1 if self._second[0] == second else 1
        self._second = (second, count)
        if count > self.per_second:
            return self._error(36009003, "too many requests", 429)
        if self.random.random() < self.failure_rate:
            return self._error(36009009, "internal error", 500)
        self.calls.append(request.url.path)
        return None

    async def shops(self, request: Request) -> JSONResponse:
        if (refused := await self._signed(request)) is not None:
            return refused
        shop = {"id": "7000000000000001", "name": "Stand-in Shop", "region": "US", "seller_type": "LOCAL",
                "cipher": self.shop_cipher, "code": "USLCSTANDIN"}  # fmt: skip
        return self._ok({"shops": [shop]})

    async def search(self, request: Request) -> JSONResponse:
        if (refused := await self._signed(request)) is not None:
            return refused
        q = request.query_params
        if q.get("shop_cipher") != self.shop_cipher:
            return self._error(106011, "invalid shop_cipher")
        try:
            size = int(q["page_size"])
            body = json.loads(await request.body() or b"{}")
            since, until = int(body["update_time_ge"]), int(body["update_time_lt"])
        except (KeyError, ValueError, TypeError):
            return self._error(36009001, "page_size, update_time_ge and update_time_lt are required")
        if not 0 < size <= 100:
            return self._error(36009001, "page_size is 1 to 100")
        inside = sorted(
            (o for o in self.orders if since <= o["update_time"] < until),
            key=lambda o: (o["update_time"], o["id"]),
        )
        start = int(q.get("page_token") or 0)
        following = str(start + size) if start + size < len(inside) else ""
        return self._ok(
            {"orders": inside[start : start + size], "next_page_token": following, "total_count": len(inside)}
        )


def main() -> None:
    """`python -m brandloop_plugins.tiktok_shop.standin [port]`: a local TikTok Shop with 500
    orders from the last day (docs/connectors.md, "Trying it"). Its consent page sends the seller
    to `redirect_uri`, as the redirect URL registered with a real app would."""
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9102
    shop = TikTokShopStandIn(
        app_key="standinkey", app_secret="stand-in-app-secret",
        orders=sample_orders(500, start=datetime.now(UTC) - timedelta(hours=6)),
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    print(
        "createConnection config: "
        + json.dumps(
            {
                "app_key": shop.app_key,
                "app_secret": shop.app_secret,
                "api_base_url": url,
                "auth_base_url": url,
            }
        )
    )
    uvicorn.run(shop.app, host="127.0.0.1", port=port)


if __name__ == "__main__":
    main()
