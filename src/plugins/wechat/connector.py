"""WeChat Official Account: access tokens, verified pushes in plain and safe mode, followers,
template messages.

Access tokens come from the stable-token endpoint (two hours; the same token to every caller
until it expires, so concurrent workers do not invalidate each other's). WeChat checks the push
URL with a signed GET carrying `echostr`, which is answered as given; every push is signed in
the query: `signature` over token, timestamp and nonce, and in safe mode `msg_signature` over
those and the ciphertext, which decrypts under the EncodingAESKey to a message naming this
account's appid (crypto.py). A push is answered "success", or a follow with the account's welcome
message (encrypted and signed in safe mode). Subscribe and unsubscribe events
bring followers and their consent; `user/info/batchget` gives their openid and, when the account is
bound to the Open Platform, unionid. Template messages carry survey invitations.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlsplit
from xml.etree.ElementTree import Element

import httpx
from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException
from pydantic import AfterValidator, Field, SecretStr, field_validator

from brandloop.connectors import (
    WEBHOOK_FRESHNESS,
    Authorization,
    AuthorizationRevoked,
    BaseUrl,
    BuyerRecord,
    Capability,
    ConnectorConfig,
    DeliveryRefused,
    EventKind,
    Follower,
    Grant,
    ListingObservation,
    Message,
    OrderRecord,
    Page,
    PlatformError,
    Quota,
    RateLimited,
    TimeWindow,
    TokenExpired,
    WebhookEvent,
    raise_for_transient,
)
from brandloop_plugins.wechat.crypto import CryptoError, MessageCrypto, signature, signed

PRODUCTION = "https://api.weixin.qq.com"
STABLE_TOKEN = "/cgi-bin/stable_token"  # noqa: S105 (a path)
USER_INFO_BATCH = "/cgi-bin/user/info/batchget"
BATCH_GET = 100
"""batchget takes at most 100 openids."""
TEMPLATE_SEND = "/cgi-bin/message/template/send"
EXPIRED_TOKEN = {40001, 40014, 42001}
"""access_token invalid, not legal, expired."""
REFUSED_CREDENTIALS = {40013, 40125, 40164, 41004}
"""invalid appid, invalid appsecret, IP not on the allow list, appsecret missing."""
QUOTA_REACHED = {45009, 45011}
"""the API's daily quota, or its rate."""
NOT_FOLLOWING = {43004, 43101}
"""the user does not follow the account, or refused its messages."""
SCENE_EVENTS = {"subscribe": EventKind.FOLLOWED, "unsubscribe": EventKind.UNFOLLOWED}


def _in_cdata(text: str) -> str:
    if "]]>" in text:
        raise ValueError("a reply cannot contain ]]>")
    return text


class WeChatConfig(ConnectorConfig):
    appid: str = Field(pattern=r"^wx[0-9a-f]{16}$")
    secret: SecretStr
    token: SecretStr
    """The push token set in the account's server configuration (3 to 32 letters and digits)."""
    encoding_aes_key: SecretStr | None = None
    """43 characters; needed in safe (encrypted) mode."""
    survey_template_id: str | None = Field(default=None, max_length=64)
    """The template message that carries survey invitations: {{first}}, {{keyword1}}, {{remark}}."""
    welcome_message: Annotated[str, Field(min_length=1, max_length=600), AfterValidator(_in_cdata)] | None = (
        None
    )
    """The text a new follower gets in answer to following (encrypted in safe mode)."""
    api_base_url: BaseUrl = PRODUCTION

    @field_validator("encoding_aes_key")
    @classmethod
    def _aes_key(cls, key: SecretStr | None) -> SecretStr | None:
        if key is not None:
            MessageCrypto(key.get_secret_value(), "")  # ValueError unless 43 characters of base64
        return key


def _config(config: ConnectorConfig) -> WeChatConfig:
    assert isinstance(config, WeChatConfig)
    return config


def _crypto(c: WeChatConfig) -> MessageCrypto | None:
    return MessageCrypto(c.encoding_aes_key.get_secret_value(), c.appid) if c.encoding_aes_key else None


def _checked(response: httpx.Response) -> dict[str, Any]:
    """The body of a successful call; the SDK's errors for WeChat's errcode otherwise."""
    raise_for_transient(response, "WeChat is throttling this account")
    response.raise_for_status()
    try:
        body: dict[str, Any] = response.json()
    except ValueError as error:  # a proxy's page, not WeChat's answer
        raise PlatformError("WeChat answered without JSON") from error
    code = int(body.get("errcode") or 0)
    if code == 0:
        return body
    message = f"{code}: {body.get('errmsg', '')}"[:300]
    if code in EXPIRED_TOKEN:
        raise TokenExpired(message)
    if code in REFUSED_CREDENTIALS:
        raise AuthorizationRevoked(message)
    if code in QUOTA_REACHED:
        raise RateLimited(message, retry_after=3600)
    if code in NOT_FOLLOWING:
        raise DeliveryRefused(message)
    raise PlatformError(message)  # -1: system busy, and the rest


def _xml(body: bytes) -> Element:
    try:
        return ElementTree.fromstring(body)
    except (ElementTree.ParseError, DefusedXmlException) as error:
        raise ValueError("not a WeChat push") from error


class WeChatConnector:
    key = "wechat"
    display_name = "WeChat Official Account"
    capabilities = frozenset({Capability.CUSTOMERS, Capability.MESSAGING, Capability.WEBHOOKS})
    config_model = WeChatConfig
    requests_per_second = 20.0
    authorization = Authorization.CREDENTIALS
    daily_messages = 100_000
    """A verified service account's template-message quota (WeChat raises it with followers)."""
    quota_zone = "Asia/Shanghai"

    def quota(self, request: httpx.Request) -> Quota | None:
        return None  # one quota per account

    def authorize_url(self, config: ConnectorConfig, *, redirect_uri: str, state: str) -> str:
        raise NotImplementedError("the account's appid and secret are part of the configuration")

    async def exchange_code(
        self, client: httpx.AsyncClient, config: ConnectorConfig, *, code: str, params: Mapping[str, str]
    ) -> Grant:
        return await self.refresh(client, config, None)

    async def refresh(self, client: httpx.AsyncClient, config: ConnectorConfig, grant: Grant | None) -> Grant:
        c = _config(config)
        body = _checked(
            await client.post(
                f"{c.api_base_url}{STABLE_TOKEN}",
                json={"grant_type": "client_credential", "appid": c.appid, "secret": c.secret.get_secret_value(),
                      "force_refresh": False},
            )
        )  # fmt: skip
        return Grant(
            access_token=SecretStr(str(body["access_token"])),
            expires_at=datetime.now(UTC) + timedelta(seconds=int(body["expires_in"])),
        )

    async def fetch_orders(
        self,
        client: httpx.AsyncClient,
        config: ConnectorConfig,
        grant: Grant,
        window: TimeWindow,
        cursor: str | None,
    ) -> Page[OrderRecord]:
        raise NotImplementedError("an Official Account has followers, not orders")

    async def fetch_listings(
        self,
        client: httpx.AsyncClient,
        config: ConnectorConfig,
        grant: Grant,
        window: TimeWindow,
        cursor: str | None,
    ) -> Page[ListingObservation]:
        raise NotImplementedError("an Official Account has no listings")

    async def fetch_followers(
        self, client: httpx.AsyncClient, config: ConnectorConfig, grant: Grant, follower_ids: Sequence[str]
    ) -> Sequence[Follower]:
        c, found = _config(config), []
        for start in range(0, len(follower_ids), BATCH_GET):
            listed = _checked(
                await client.post(
                    f"{c.api_base_url}{USER_INFO_BATCH}",
                    params={"access_token": grant.access_token.get_secret_value()},
                    json={"user_list": [{"openid": o, "lang": "zh_CN"} for o in follower_ids[start : start + BATCH_GET]]},
                )
            )  # fmt: skip
            found += [self._follower(info) for info in listed.get("user_info_list") or []]
        return found

    @staticmethod
    def _follower(info: Mapping[str, Any]) -> Follower:
        openid = str(info["openid"])
        return Follower(
            follower_id=openid,
            following=int(info.get("subscribe") or 0) == 1,
            buyer=BuyerRecord(buyer_id=openid, wechat_unionid=info.get("unionid")),
            followed_at=datetime.fromtimestamp(int(info["subscribe_time"]), UTC)
            if info.get("subscribe_time")
            else None,
            source=str(info["subscribe_scene"]) if info.get("subscribe_scene") else None,
        )

    async def send(
        self, client: httpx.AsyncClient, config: ConnectorConfig, grant: Grant, message: Message
    ) -> str:
        c = _config(config)
        if not c.survey_template_id:
            raise DeliveryRefused("no survey_template_id configured for this account")
        body = _checked(
            await client.post(
                f"{c.api_base_url}{TEMPLATE_SEND}",
                params={"access_token": grant.access_token.get_secret_value()},
                json={
                    "touser": message.recipient_id,
                    "template_id": c.survey_template_id,
                    "url": message.link,
                    "data": {"first": {"value": message.title}, "keyword1": {"value": message.body},
                             "remark": {"value": message.link}},
                },
            )
        )  # fmt: skip
        return str(body.get("msgid", ""))

    # -- pushes --------------------------------------------------------------------------------

    @staticmethod
    def _query(url: str) -> dict[str, str]:
        return dict(parse_qsl(urlsplit(url).query))

    def answer_challenge(self, config: ConnectorConfig, *, url: str) -> str | None:
        c, q = _config(config), self._query(url)
        if not q.get("echostr") or not self._fresh(q):
            return None
        genuine = signed(
            q.get("signature", ""), c.token.get_secret_value(), q["timestamp"], q.get("nonce", "")
        )
        return q["echostr"] if genuine else None

    @staticmethod
    def _fresh(q: Mapping[str, str]) -> bool:
        try:
            return abs(time.time() - int(q.get("timestamp", ""))) <= WEBHOOK_FRESHNESS
        except ValueError:
            return False

    def verify_webhook(
        self, config: ConnectorConfig, *, url: str, headers: Mapping[str, str], body: bytes
    ) -> bool:
        c, q = _config(config), self._query(url)
        token, stamp, nonce = c.token.get_secret_value(), q.get("timestamp", ""), q.get("nonce", "")
        if not self._fresh(q) or not signed(q.get("signature", ""), token, stamp, nonce):
            return False
        if q.get("encrypt_type") != "aes":
            return _crypto(c) is None  # an account in safe mode believes only encrypted pushes
        try:
            encrypted = _xml(body).findtext("Encrypt") or ""
        except ValueError:
            return False
        return bool(encrypted) and signed(q.get("msg_signature", ""), token, stamp, nonce, encrypted)

    @staticmethod
    def _push(c: WeChatConfig, body: bytes) -> dict[str, str]:
        """A push's fields, decrypted in safe mode; ValueError when it is not this account's."""
        root = _xml(body)
        encrypted, crypto = root.findtext("Encrypt"), _crypto(c)
        if encrypted is not None:
            if crypto is None:
                raise ValueError("an encrypted push, but no encoding_aes_key is configured")
            try:
                root = _xml(crypto.decrypt(encrypted).encode())
            except CryptoError as error:
                raise ValueError(str(error)) from error
        push = {child.tag: (child.text or "") for child in root}
        if push.get("ToUserName") is None or not push.get("FromUserName"):
            raise ValueError("not a WeChat message")
        return push

    def acknowledge(self, config: ConnectorConfig, *, url: str, body: bytes) -> str:
        """ "success", or the welcome message in answer to a follow (encrypted in safe mode)."""
        c = _config(config)
        push = self._push(c, body)
        if not (c.welcome_message and push.get("MsgType") == "event" and push.get("Event") == "subscribe"):
            return "success"
        reply = (
            f"<xml><ToUserName><![CDATA[{push['FromUserName']}]]></ToUserName>"
            f"<FromUserName><![CDATA[{push['ToUserName']}]]></FromUserName><CreateTime>{int(time.time())}</CreateTime>"
            f"<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{c.welcome_message}]]></Content></xml>"
        )
        crypto, q = _crypto(c), self._query(url)
        if crypto is None or q.get("encrypt_type") != "aes":
            return reply
        encrypted, stamp, nonce = crypto.encrypt(reply), q["timestamp"], q.get("nonce", "")
        return (
            f"<xml><Encrypt><![CDATA[{encrypted}]]></Encrypt><MsgSignature><![CDATA["
            f"{signature(c.token.get_secret_value(), stamp, nonce, encrypted)}]]></MsgSignature>"
            f"<TimeStamp>{stamp}</TimeStamp><Nonce><![CDATA[{nonce}]]></Nonce></xml>"
        )

    def parse_webhook(self, config: ConnectorConfig, body: bytes) -> Sequence[WebhookEvent]:
        push = self._push(_config(config), body)
        event = push.get("Event", "").lower() if push.get("MsgType") == "event" else ""
        key = push.get("MsgId") or f"{push['FromUserName']}:{push.get('CreateTime', '')}:{event}"
        return [
            WebhookEvent(
                key=key,
                kind=SCENE_EVENTS.get(event, EventKind.OTHER),
                payload={**push, "follower_id": push["FromUserName"]},
            )
        ]
