"""A local stand-in for a WeChat Official Account's side of WeChat, for tests and the demo: a
small ASGI app for the API, and the pushes WeChat would send.

It issues stable access tokens for the right appid and secret (the same token until it expires,
as WeChat's stable-token endpoint does), answers `user/info/batchget` (at most 100 openids; unionid
only when the account is
bound to the Open Platform), sends template messages only to followers and within a daily quota,
answers WeChat's errcodes (40001 expired token, 43004 not following, 45009 quota), fails now and
then with errcode -1 (seeded), and signs and encrypts pushes exactly as WeChat does.
"""

from __future__ import annotations

import json
import random
import secrets
import sys
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from brandloop_plugins.wechat.connector import BATCH_GET, STABLE_TOKEN, TEMPLATE_SEND, USER_INFO_BATCH
from brandloop_plugins.wechat.crypto import MessageCrypto, signature


@dataclass
class WeChatStandIn:
    appid: str
    secret: str
    token: str
    encoding_aes_key: str | None = None
    """Safe mode when set: pushes are encrypted."""
    bound_to_open_platform: bool = True
    """Whether user/info/batchget gives unionids."""
    daily_quota: int = 100_000
    failure_rate: float = 0.0
    access_seconds: int = 7200
    seed: int = 1
    followers: dict[str, dict[str, Any]] = field(default_factory=dict)
    access: dict[str, float] = field(default_factory=dict)
    sent: list[dict[str, Any]] = field(default_factory=list)
    token_requests: int = 0

    def __post_init__(self) -> None:
        self.random = random.Random(self.seed)
        self.crypto = MessageCrypto(self.encoding_aes_key, self.appid) if self.encoding_aes_key else None
        self.app = Starlette(
            routes=[
                Route(STABLE_TOKEN, self.stable_token, methods=["POST"]),
                Route(USER_INFO_BATCH, self.user_info_batch, methods=["POST"]),
                Route(TEMPLATE_SEND, self.template_send, methods=["POST"]),
            ]
        )

    # -- what tests and the demo drive --------------------------------------------------------

    def expire_access_tokens(self) -> None:
        self.access = {token: 0.0 for token in self.access}

    def follow(self, openid: str, scene: str = "ADD_SCENE_QR_CODE") -> str:
        """Someone follows the account; the push WeChat sends (its XML)."""
        self.followers[openid] = {
            "subscribe": 1, "openid": openid, "unionid": f"o6_{openid[-12:]}", "subscribe_time": int(time.time()),
            "subscribe_scene": scene, "language": "zh_CN",
        }  # fmt: skip
        return self._event(openid, "subscribe")

    def unfollow(self, openid: str) -> str:
        self.followers[openid] = {"subscribe": 0, "openid": openid}
        return self._event(openid, "unsubscribe")

    def _event(self, openid: str, event: str) -> str:
        return (
            f"<xml><ToUserName><![CDATA[gh_{self.appid[2:14]}]]></ToUserName>"
            f"<FromUserName><![CDATA[{openid}]]></FromUserName><CreateTime>{int(time.time())}</CreateTime>"
            f"<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[{event}]]></Event>"
            "<EventKey><![CDATA[]]></EventKey></xml>"
        )

    def push(
        self, url: str, message: str, *, token: str | None = None, timestamp: int | None = None
    ) -> tuple[str, bytes]:
        """The address (signed query included) and body WeChat posts `message` with."""
        stamp, nonce, token = (
            str(timestamp or int(time.time())),
            str(self.random.randrange(10**9)),
            token or self.token,
        )
        query = {"signature": signature(token, stamp, nonce), "timestamp": stamp, "nonce": nonce}
        if self.crypto is None:
            return f"{url}?{urlencode(query)}", message.encode()
        encrypted = self.crypto.encrypt(message)
        query |= {"encrypt_type": "aes", "msg_signature": signature(token, stamp, nonce, encrypted)}
        body = f"<xml><ToUserName><![CDATA[gh_{self.appid[2:14]}]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
        return f"{url}?{urlencode(query)}", body.encode()

    def challenge(self, url: str, echostr: str) -> str:
        """The address WeChat checks a server URL with when it is saved."""
        stamp, nonce = str(int(time.time())), str(self.random.randrange(10**9))
        return f"{url}?{urlencode({'signature': signature(self.token, stamp, nonce), 'timestamp': stamp, 'nonce': nonce, 'echostr': echostr})}"

    # -- the platform --------------------------------------------------------------------------

    @staticmethod
    def _error(code: int, message: str) -> JSONResponse:
        return JSONResponse({"errcode": code, "errmsg": f"{message} rid: {secrets.token_hex(6)}"})

    def _call(self, request: Request) -> JSONResponse | None:
        expires = self.access.get(request.query_params.get("access_token", ""))
        if expires is None:
            return self._error(40001, "invalid credential, access_token is invalid or not latest")
        if expires < time.time():
            return self._error(42001, "access_token expired")
        if self.random.random() < self.failure_rate:
            return self._error(-1, "system error")
        return None

    async def stable_token(self, request: Request) -> JSONResponse:
        self.token_requests += 1
        body = await request.json()
        if body.get("appid") != self.appid:
            return self._error(40013, "invalid appid")
        if body.get("secret") != self.secret:
            return self._error(40125, "invalid appsecret")
        live = [t for t, at in self.access.items() if at > time.time() + 300]
        if live and not body.get("force_refresh"):
            token = live[0]  # the stable token: the same one until shortly before it expires
        else:
            token = secrets.token_urlsafe(40)
            self.access[token] = time.time() + self.access_seconds
        return JSONResponse({"access_token": token, "expires_in": int(self.access[token] - time.time())})

    async def user_info_batch(self, request: Request) -> JSONResponse:
        if (refused := self._call(request)) is not None:
            return refused
        wanted = [str(u.get("openid", "")) for u in (await request.json()).get("user_list") or []]
        if not 0 < len(wanted) <= BATCH_GET:
            return self._error(40032, "invalid openid list size")
        if any(o not in self.followers for o in wanted):
            return self._error(40003, "invalid openid")
        shown = [dict(self.followers[o]) for o in wanted]
        for info in shown if not self.bound_to_open_platform else []:
            info.pop("unionid", None)
        return JSONResponse({"user_info_list": shown})

    async def template_send(self, request: Request) -> JSONResponse:
        if (refused := self._call(request)) is not None:
            return refused
        body = await request.json()
        if not self.followers.get(body.get("touser", ""), {}).get("subscribe"):
            return self._error(43004, "require subscribe")
        if len(self.sent) >= self.daily_quota:
            return self._error(45009, "reach max api daily quota limit")
        msgid = self.random.randrange(10**15, 10**16)
        self.sent.append({**body, "msgid": msgid})
        return JSONResponse({"errcode": 0, "errmsg": "ok", "msgid": msgid})


def main() -> None:
    """`python -m brandloop_plugins.wechat.standin [port]`: a local WeChat API for one account, for
    trying a connection with `make serve` (docs/connectors.md, "Trying it")."""
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9104
    account = WeChatStandIn(
        appid="wx" + "0123456789abcdef", secret="stand-in-app-secret", token="standintoken",
        encoding_aes_key="abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
    )  # fmt: skip
    print(
        "createConnection config: "
        + json.dumps(
            {"appid": account.appid, "secret": account.secret, "token": account.token,
             "encoding_aes_key": account.encoding_aes_key, "survey_template_id": "survey-template",
             "api_base_url": f"http://127.0.0.1:{port}"}
        )
    )  # fmt: skip
    uvicorn.run(account.app, host="127.0.0.1", port=port)


if __name__ == "__main__":
    main()
