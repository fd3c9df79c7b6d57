"""A local stand-in for Shopee Open Platform v2, for tests and the demo: a small ASGI app.

It checks every signature and timestamp as Shopee does, issues one-time authorization codes,
four-hour access tokens and single-use refresh tokens, pages order lists by cursor (at most
100 a page, at most 15 days a query), answers order details for at most 50 order numbers,
throttles each shop with 429, and fails now and then with a 500 (seeded, so a test run is
repeatable).
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
from urllib.parse import urlencode

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from brandloop_plugins.shopee.connector import (
    AUTHORIZE,
    ORDER_DETAIL,
    ORDER_LIST,
    REFRESH,
    TOKEN,
    push_signature,
    sign,
)

FRESH_SECONDS = 300
MAX_WINDOW = 15 * 86400


def sample_orders(count: int, *, start: datetime, seed: int = 7) -> list[dict[str, Any]]:
    """`count` orders as get_order_detail returns them, updated one after another from `start`."""
    rng = random.Random(seed)
    orders = []
    for n in range(count):
        at = int((start + timedelta(seconds=37 * n)).timestamp())
        price = rng.randrange(5, 400) + rng.choice([0, 0.5, 0.9])
        quantity = rng.randrange(1, 4)
        buyer = rng.randrange(1, max(count // 3, 2))
        orders.append(
            {
                "order_sn": f"2611{n:08d}SG",
                "region": "SG",
                "currency": "SGD",
                "order_status": rng.choice(["READY_TO_SHIP", "SHIPPED", "COMPLETED", "UNPAID", "CANCELLED"]),
                "create_time": at - 600,
                "update_time": at,
                "total_amount": round(price * quantity + 2.5, 2),
                "actual_shipping_fee": 2.5,
                "buyer_user_id": 880000 + buyer,
                "buyer_username": f"buyer{buyer}",
                "recipient_address": {"name": "J***n", "phone": "******12"},
                "item_list": [
                    {
                        "item_id": 100 + n % 7,
                        "item_name": f"Oolong tea {n % 7}",
                        "item_sku": f"TEA-{n % 7}",
                        "model_id": 0,
                        "model_sku": "",
                        "model_quantity_purchased": quantity,
                        "model_discounted_price": price,
                        "model_original_price": price,
                    }
                ],
            }
        )
    return orders


@dataclass
class ShopeeStandIn:
    partner_id: int
    partner_key: str
    shop_id: int
    orders: list[dict[str, Any]] = field(default_factory=list)
    access_seconds: int = 4 * 3600
    failure_rate: float = 0.0
    """The share of shop calls answered with a 500."""
    per_second: int = 1000
    """Calls a shop may make in one second before it is answered 429."""
    seed: int = 1
    codes: set[str] = field(default_factory=set)
    access: dict[str, float] = field(default_factory=dict)
    """Access tokens and when they expire."""
    refresh_tokens: set[str] = field(default_factory=set)
    calls: list[str] = field(default_factory=list)
    _second: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        self.random = random.Random(self.seed)
        self.app = Starlette(
            routes=[
                Route(AUTHORIZE, self.authorize),
                Route(TOKEN, self.token, methods=["POST"]),
                Route(REFRESH, self.refresh, methods=["POST"]),
                Route(ORDER_LIST, self.order_list),
                Route(ORDER_DETAIL, self.order_detail),
            ]
        )

    # -- what tests and the demo drive --------------------------------------------------------

    def issue_code(self) -> str:
        code = secrets.token_hex(16)
        self.codes.add(code)
        return code

    def expire_access_tokens(self) -> None:
        self.access = {token: 0.0 for token in self.access}

    def push(self, url: str, message: dict[str, Any], key: str | None = None) -> tuple[bytes, dict[str, str]]:
        """A push message as Shopee sends it to `url`: its body and headers."""
        body = json.dumps(message).encode()
        return body, {
            "authorization": push_signature(key or self.partner_key, url, body),
            "content-type": "application/json",
        }

    # -- the platform --------------------------------------------------------------------------

    @staticmethod
    def _error(error: str, message: str, status: int = 400) -> JSONResponse:
        return JSONResponse(
            {"error": error, "message": message, "request_id": secrets.token_hex(8)}, status_code=status
        )

    def _signed(self, request: Request, *extra: object) -> JSONResponse | None:
        """None when the common parameters are signed right and fresh; Shopee's error otherwise."""
        q = request.query_params
        if q.get("partner_id") != str(self.partner_id):
            return self._error("error_param", "Wrong partner_id.")
        try:
            timestamp = int(q.get("timestamp", ""))
        except ValueError:
            return self._error("error_param", "Wrong timestamp.")
        if abs(time.time() - timestamp) > FRESH_SECONDS:
            return self._error("error_auth", "Timestamp is expired.", 403)
        expected = sign(self.partner_key, self.partner_id, request.url.path, timestamp, *extra)
        if not hmac.compare_digest(expected, q.get("sign", "")):
            return self._error("error_sign", "Wrong sign.", 403)
        return None

    def _grant(self) -> dict[str, Any]:
        access, refresh = f"at-{secrets.token_hex(12)}", f"rt-{secrets.token_hex(12)}"
        self.access[access] = time.time() + self.access_seconds
        self.refresh_tokens.add(refresh)
        return {
            "access_token": access,
            "refresh_token": refresh,
            "expire_in": self.access_seconds,
            "error": "",
            "message": "",
            "request_id": secrets.token_hex(8),
        }

    async def authorize(self, request: Request) -> Response:
        if (refused := self._signed(request)) is not None:
            return refused
        redirect = request.query_params["redirect"]
        joiner = "&" if "?" in redirect else "?"
        query = urlencode({"code": self.issue_code(), "shop_id": self.shop_id})
        return RedirectResponse(f"{redirect}{joiner}{query}", status_code=302)

    async def token(self, request: Request) -> JSONResponse:
        if (refused := self._signed(request)) is not None:
            return refused
        body = await request.json()
        if body.get("code") not in self.codes or body.get("shop_id") != self.shop_id:
            return self._error("error_auth", "Invalid code.", 403)
        self.codes.discard(body["code"])
        return JSONResponse({**self._grant(), "shop_id": self.shop_id})

    async def refresh(self, request: Request) -> JSONResponse:
        if (refused := self._signed(request)) is not None:
            return refused
        body = await request.json()
        if body.get("refresh_token") not in self.refresh_tokens or body.get("shop_id") != self.shop_id:
            return self._error("error_param", "Invalid refresh_token.", 403)
        self.refresh_tokens.discard(body["refresh_token"])  # single use
        return JSONResponse({**self._grant(), "shop_id": self.shop_id, "partner_id": self.partner_id})

    def _shop_call(self, request: Request) -> JSONResponse | None:
        q = request.query_params
        token = q.get("access_token", "")
        if (refused := self._signed(request, token, q.get("shop_id", ""))) is not None:
            return refused
        if q.get("shop_id") != str(self.shop_id):
            return self._error("error_shop", "Wrong shop_id.", 403)
        if self.access.get(token, 0) < time.time():
            return self._error("invalid_acceess_token", "Invalid access_token.", 403)
        second = int(time.time())
        count = self._second[1] + 1 if self._second[0] == second else 1
        self._second = (second, count)
        if count > self.per_second:
            return self._error("error_busy", "Too many requests.", 429)
        if self.random.random() < self.failure_rate:
            return self._error("error_server", "Something went wrong.", 500)
        self.calls.append(request.url.path)
        return None

    async def order_list(self, request: Request) -> JSONResponse:
        if (refused := self._shop_call(request)) is not None:
            return refused
        q = request.query_params
        try:
            since, until, size = int(q["time_from"]), int(q["time_to"]), int(q["page_size"])
        except (KeyError, ValueError):
            return self._error("error_param", "time_from, time_to and page_size are required.")
        if q.get("time_range_field") != "update_time" and q.get("time_range_field") != "create_time":
            return self._error("error_param", "time_range_field is invalid.")
        if not 0 < until - since <= MAX_WINDOW or not 0 < size <= 100:
            return self._error("error_param", "The time range is at most 15 days, page_size 1 to 100.")
        field_name = q["time_range_field"]
        inside = sorted(
            (o for o in self.orders if since <= o[field_name] <= until),
            key=lambda o: (o[field_name], o["order_sn"]),
        )
        start = int(q.get("cursor") or 0)
        page = inside[start : start + size]
        more = start + size < len(inside)
        return JSONResponse(
            {
                "error": "",
                "message": "",
                "request_id": secrets.token_hex(8),
                "response": {
                    "more": more,
                    "next_cursor": str(start + size) if more else "",
                    "order_list": [{"order_sn": o["order_sn"]} for o in page],
                },
            }
        )

    async def order_detail(self, request: Request) -> JSONResponse:
        if (refused := self._shop_call(request)) is not None:
            return refused
        wanted = [n for n in request.query_params.get("order_sn_list", "").split(",") if n]
        if not 0 < len(wanted) <= 50:
            return self._error("error_param", "order_sn_list has 1 to 50 numbers.")
        by_number = {o["order_sn"]: o for o in self.orders}
        return JSONResponse(
            {
                "error": "",
                "message": "",
                "request_id": secrets.token_hex(8),
                "response": {"order_list": [by_number[n] for n in wanted if n in by_number]},
            }
        )


def main() -> None:
    """`python -m brandloop_plugins.shopee.standin [port]`: a local Shopee with 500 orders from the
    last day, for trying a connection with `make serve` (docs/connectors.md, "Trying it")."""
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9101
    shop = ShopeeStandIn(
        partner_id=1000001,
        partner_key="stand-in-partner-key",
        shop_id=2000001,
        orders=sample_orders(500, start=datetime.now(UTC) - timedelta(hours=6)),
    )
    print(
        "createConnection config: "
        + json.dumps(
            {
                "partner_id": shop.partner_id,
                "partner_key": shop.partner_key,
                "shop_id": shop.shop_id,
                "api_base_url": f"http://127.0.0.1:{port}",
            }
        )
    )
    uvicorn.run(shop.app, host="127.0.0.1", port=port)


if __name__ == "__main__":
    main()
