"""The WeChat Official Account connector: WeChat's official message-crypto samples, and a
faithful local WeChat for tokens, pushes in plain and safe mode, and followers."""

from __future__ import annotations

import asyncio
import base64
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from connections_support import kill_and_finish, serving
from defusedxml import ElementTree
from nps_support import survey
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from brandloop.connections import service
from brandloop.connections.models import Connection
from brandloop.connections.platforms import Platforms
from brandloop.connections.vault import vault
from brandloop.db.session import tenant_transaction
from brandloop.graphql.relay import global_id, pk_of
from brandloop.jobs import worker
from brandloop.nps import links
from brandloop.nps import service as nps
from brandloop.settings import Settings
from brandloop_plugins.wechat import WeChatConfig, WeChatConnector
from brandloop_plugins.wechat.crypto import CryptoError, MessageCrypto, signature
from brandloop_plugins.wechat.standin import WeChatStandIn
from support import GraphQLClient, Tenant

# WeChat's message-crypto sample (WXBizMsgCryptTest, from the guide's downloadable samples).
SAMPLE_KEY, SAMPLE_APPID = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "wxb11529c136998cb6"
SAMPLE_RANDOM = b"aaaabbbbccccdddd"
SAMPLE_REPLY = "我是中文abcd123"
SAMPLE_ENCRYPTED = "jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg=="
SAMPLE_REPLY_2 = (
    "<xml><ToUserName><![CDATA[oia2Tj我是中文jewbmiOUlr6X-1crbLOvLw]]></ToUserName><FromUserName><![CDATA[gh_7f083739789a]]>"
    "</FromUserName><CreateTime>1407743423</CreateTime><MsgType><![CDATA[video]]></MsgType><Video><MediaId><![CDATA["
    "eYJ1MbwPRJtOvIEabaxHs7TX2D-HV71s79GUxqdUkjm6Gs2Ed1KF3ulAOA9H1xG0]]></MediaId><Title><![CDATA[testCallBackReplyVideo]]>"
    "</Title><Description><![CDATA[testCallBackReplyVideo]]></Description></Video></xml>"
)
SAMPLE_ENCRYPTED_2 = (
    "jn1L23DB+6ELqJ+6bruv23M2GmYfkv0xBh2h+XTBOKVKcgDFHle6gqcZ1cZrk3e1qjPQ1F4RsLWzQRG9udbKWesxlkupqcEcW7ZQweImX9+wLMa0GaUzp"
    "kycA8+IamDBxn5loLgZpnS7fVAbExOkK5DYHBmv5tptA9tklE/fTIILHR8HLXa5nQvFb3tYPKAlHF3rtTeayNf0QuM+UW/wM9enGIDIJHF7CLHiDNAY"
    "xr+r+OrJCmPQyTy8cVWlu9iSvOHPT/77bZqJucQHQ04sq7KZI27OcqpQNSto2OdHCoTccjggX5Z9Mma0nMJBU+jLKJ38YB1fBIz+vBzsYjrTmFQ44Y"
    "feEuZ+xRTQwr92vhA9OxchWVINGC50qE/6lmkwWTwGX9wtQpsJKhP+oS7rvTY8+VdzETdfakjkwQ5/Xka042OlUb1/slTwo4RscuQ+RdxSGvDahxAJ6+"
    "EAjLt9d8igHngxIbf6YyqqROxuxqIeIch3CssH/LqRs+iAcILvApYZckqmA7FNERspKA5f8GoJ9sv8xmGvZ9Yrf57cExWtnX8aCMMaBropU/1k+hKP5L"
    "VdzbWCG0hGwx/dQudYR/eXp3P0XxjlFiy+9DMlaFExWUZQDajPkdPrEeOwofJb"
)
# The same scheme's signed sample for WeCom receivers (Sample.cs): a published msg_signature.
SIGNED_TOKEN, SIGNED_KEY, SIGNED_RECEIVER = (
    "QDG6eK",
    "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
    "wx5823bf96d3bd56c7",
)
SIGNED_TIMESTAMP, SIGNED_NONCE = "1409659813", "1372623149"
SIGNED_SIGNATURE = "477715d11cdb4164915debcba66cb864d751f3e6"
SIGNED_ENCRYPTED = (
    "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJTs3TUUkSU"
    "XxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNX"
    "ZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA"
    "3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN"
    "+E7Q=="
)

APPID, SECRET, TOKEN, AES_KEY = (
    "wx1234567890abcdef",
    "app-secret-stand-in",
    "brandtoken42",
    "Z" * 22 + "abcdefghij0123456789A",
)
CATCH_UP = next(job for job in worker.JOBS if job.name == "connections.catch_up")
CREATE = """mutation($input: CreateConnectionInput!) { createConnection(input: $input) {
  connection { id webhookUrl } userErrors { field code } } }"""
START = """mutation($id: ID!) { startAuthorization(input: {id: $id}) {
  connection { status config } userErrors { code message } } }"""
CONSENTS = """query($id: ID!) { customer(id: $id) { identities { kind value }
  consents { channel purpose granted source evidence } } }"""


def test_the_official_samples_encrypt_and_decrypt_exactly() -> None:
    crypto = MessageCrypto(SAMPLE_KEY, SAMPLE_APPID)
    assert crypto.encrypt(SAMPLE_REPLY, SAMPLE_RANDOM) == SAMPLE_ENCRYPTED
    assert crypto.encrypt(SAMPLE_REPLY_2, SAMPLE_RANDOM) == SAMPLE_ENCRYPTED_2
    assert crypto.decrypt(SAMPLE_ENCRYPTED) == SAMPLE_REPLY
    assert crypto.decrypt(SAMPLE_ENCRYPTED_2) == SAMPLE_REPLY_2
    # The signed sample: its msg_signature verifies and its message names its receiver.
    assert signature(SIGNED_TOKEN, SIGNED_TIMESTAMP, SIGNED_NONCE, SIGNED_ENCRYPTED) == SIGNED_SIGNATURE
    message = MessageCrypto(SIGNED_KEY, SIGNED_RECEIVER).decrypt(SIGNED_ENCRYPTED)
    assert (
        "<Content><![CDATA[hello]]></Content>" in message and "<MsgId>4561255354251345929</MsgId>" in message
    )


def test_a_tampered_or_foreign_ciphertext_is_refused() -> None:
    crypto = MessageCrypto(SAMPLE_KEY, SAMPLE_APPID)
    raw = bytearray(base64.b64decode(SAMPLE_ENCRYPTED_2))
    raw[40] ^= 0x01  # one bit of the message's second block
    tampered = base64.b64encode(bytes(raw)).decode()
    for wrong in (tampered, SAMPLE_ENCRYPTED[:-4] + "AAA=", "not base64!", SAMPLE_ENCRYPTED[:20]):
        with pytest.raises(CryptoError):
            crypto.decrypt(wrong)
    with pytest.raises(CryptoError):  # another account's message, under the same key
        MessageCrypto(SAMPLE_KEY, "wx0000000000000000").decrypt(SAMPLE_ENCRYPTED)
    with pytest.raises(ValueError):
        MessageCrypto("too-short", SAMPLE_APPID)


def test_pushes_are_believed_only_when_signed_fresh_and_of_this_account() -> None:
    wechat = WeChatConnector()
    safe = WeChatConfig(appid=APPID, secret=SECRET, token=TOKEN, encoding_aes_key=AES_KEY)
    plain = WeChatConfig(appid=APPID, secret=SECRET, token=TOKEN)
    account = WeChatStandIn(APPID, SECRET, TOKEN, encoding_aes_key=AES_KEY)
    hook = "https://brand.example/webhooks/wechat/1"
    url, body = account.push(hook, account.follow("oUser1"))
    assert wechat.verify_webhook(safe, url=url, headers={}, body=body)
    (event,) = wechat.parse_webhook(safe, body)
    assert (event.kind, event.payload["follower_id"]) == ("followed", "oUser1")
    assert not wechat.verify_webhook(
        safe, url=url.replace("msg_signature=", "msg_signature=0"), headers={}, body=body
    )
    assert not wechat.verify_webhook(
        safe, url=url, headers={}, body=body.replace(b"<Encrypt><![CDATA[", b"<Encrypt><![CDATA[A")
    )
    stale_url, stale = account.push(hook, account.follow("oUser1"), timestamp=int(time.time()) - 7200)
    assert not wechat.verify_webhook(safe, url=stale_url, headers={}, body=stale)
    forged_url, forged = account.push(hook, account.follow("oUser1"), token="another-token")
    assert not wechat.verify_webhook(safe, url=forged_url, headers={}, body=forged)
    # An account in safe mode takes no plaintext push; a plain account takes signed plaintext.
    in_clear = WeChatStandIn(APPID, SECRET, TOKEN)
    clear_url, clear = in_clear.push(hook, in_clear.unfollow("oUser1"))
    assert not wechat.verify_webhook(safe, url=clear_url, headers={}, body=clear)
    assert wechat.verify_webhook(plain, url=clear_url, headers={}, body=clear)
    assert wechat.parse_webhook(plain, clear)[0].kind == "unfollowed"
    # Someone who knows the token but not the AES key cannot make a push decrypt.
    other = WeChatStandIn(APPID, SECRET, TOKEN, encoding_aes_key="Y" * 43)
    foreign_url, foreign = other.push(hook, other.follow("oUser2"))
    assert wechat.verify_webhook(safe, url=foreign_url, headers={}, body=foreign)  # the signature holds...
    with pytest.raises(ValueError):
        wechat.parse_webhook(safe, foreign)  # ...the content does not
    with pytest.raises(ValueError):
        wechat.parse_webhook(plain, b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml>&e;</xml>')


def test_a_follow_is_answered_with_the_welcome_message_encrypted_in_safe_mode() -> None:
    wechat, hook = WeChatConnector(), "https://brand.example/webhooks/wechat/1"
    safe = WeChatConfig(
        appid=APPID, secret=SECRET, token=TOKEN, encoding_aes_key=AES_KEY, welcome_message="欢迎!"
    )
    account = WeChatStandIn(APPID, SECRET, TOKEN, encoding_aes_key=AES_KEY)
    url, body = account.push(hook, account.follow("oMei0001"))
    reply = ElementTree.fromstring(wechat.acknowledge(safe, url=url, body=body))
    encrypted, query = reply.findtext("Encrypt") or "", dict(httpx.URL(url).params)
    assert (reply.findtext("TimeStamp"), reply.findtext("Nonce")) == (query["timestamp"], query["nonce"])
    assert reply.findtext("MsgSignature") == signature(TOKEN, query["timestamp"], query["nonce"], encrypted)
    message = ElementTree.fromstring(MessageCrypto(AES_KEY, APPID).decrypt(encrypted))
    assert (message.findtext("ToUserName"), message.findtext("MsgType"), message.findtext("Content")) == (
        "oMei0001", "text", "欢迎!",
    )  # fmt: skip
    url, body = account.push(hook, account.unfollow("oMei0001"))
    assert wechat.acknowledge(safe, url=url, body=body) == "success"
    plain = WeChatConfig(appid=APPID, secret=SECRET, token=TOKEN, welcome_message="Welcome")
    in_clear = WeChatStandIn(APPID, SECRET, TOKEN)
    url, body = in_clear.push(hook, in_clear.follow("oLi00001"))
    assert (
        ElementTree.fromstring(wechat.acknowledge(plain, url=url, body=body)).findtext("Content") == "Welcome"
    )
    with pytest.raises(ValueError):
        WeChatConfig(appid=APPID, secret=SECRET, token=TOKEN, welcome_message="]]><xml>")


async def connect(gql: GraphQLClient, tenant: Tenant, base_url: str, **given: Any) -> dict[str, Any]:
    config = {"appid": APPID, "secret": SECRET, "token": TOKEN, "encoding_aes_key": AES_KEY,
              "survey_template_id": "tmpl-survey", "api_base_url": base_url, **given}  # fmt: skip
    created = await gql.data(
        tenant.key, CREATE, {"input": {"connector": "wechat", "name": "Tea Club OA", "config": config}}
    )
    connection = created["createConnection"]["connection"]
    started = (await gql.data(tenant.key, START, {"id": connection["id"]}))["startAuthorization"]
    return {**connection, **started, "pk": pk_of(connection["id"], "ChannelConnection")}


async def customer_of(engine: AsyncEngine, tenant: Tenant, openid: str) -> str | None:
    async with tenant_transaction(engine, tenant.id) as session:
        found = await session.scalar(
            text("SELECT customer_id FROM customer_identities WHERE kind = 'wechat_openid' AND value = :v"),
            {"v": openid},
        )
    return None if found is None else global_id("Customer", found)


async def test_followers_become_customers_with_consent_and_unfollowing_withdraws_it(
    engine: AsyncEngine, settings: Settings, gql: GraphQLClient, client: httpx.AsyncClient, tenant: Tenant,
    other_tenant: Tenant, every_log_line: Any,
) -> None:  # fmt: skip
    account = WeChatStandIn(APPID, SECRET, TOKEN, encoding_aes_key=AES_KEY)
    async with serving(account.app) as url:
        refused = await connect(gql, tenant, url, secret="wrong")
        assert refused["connection"] is None and refused["userErrors"][0]["code"] == "PLATFORM_REFUSED"
        connection = await connect(gql, other_tenant, url)
        assert connection["connection"]["status"] == "ACTIVE"
        assert set(connection["connection"]["config"]) == {
            "appid",
            "survey_template_id",
            "welcome_message",
            "api_base_url",
        }
        hook = connection["webhookUrl"]
        # WeChat checks the server URL when it is saved.
        answered = await client.get(httpx.URL(account.challenge(hook, "echo-4711")).raw_path.decode())
        assert (answered.status_code, answered.text) == (200, "echo-4711")
        forged = account.challenge(hook, "echo-1").replace("signature=", "signature=0")
        assert (await client.get(httpx.URL(forged).raw_path.decode())).status_code == 401
        # A follow, delivered three times (WeChat retries when slow): answered "success", stored once.
        signed_url, body = account.push(hook, account.follow("oMei0001"))
        target = httpx.URL(signed_url).raw_path.decode()
        answers = [await client.post(target, content=body) for _ in range(3)]
        assert [(a.status_code, a.text) for a in answers] == [(200, "success")] * 3
        account.expire_access_tokens()  # the two hours ran out: user/info is refused until refreshed
        await worker.run_tenant_job(engine, settings, CATCH_UP, other_tenant.id)
        mei = await customer_of(engine, other_tenant, "oMei0001")
        assert mei is not None
        shown = (await gql.data(other_tenant.key, CONSENTS, {"id": mei}))["customer"]
        assert {(i["kind"], i["value"]) for i in shown["identities"]} == {
            ("WECHAT_OPENID", "oMei0001"), ("WECHAT_UNIONID", "o6_oMei0001"),
        }  # fmt: skip
        assert {(c["purpose"], c["granted"]) for c in shown["consents"]} == {
            ("MARKETING", True),
            ("SURVEYS", True),
        }
        assert {c["source"] for c in shown["consents"]} == {"wechat:follow"}
        assert all("'Tea Club OA' from ADD_SCENE_QR_CODE at " in c["evidence"] for c in shown["consents"])
        # Another tenant's address, or a push signed with another token, is believed by nobody.
        assert await customer_of(engine, tenant, "oMei0001") is None
        forged_url, forged_body = account.push(hook, account.follow("oEve0001"), token="guessed")
        assert (
            await client.post(httpx.URL(forged_url).raw_path.decode(), content=forged_body)
        ).status_code == 401
        # Unfollowing withdraws both.
        signed_url, body = account.push(hook, account.unfollow("oMei0001"))
        assert (await client.post(httpx.URL(signed_url).raw_path.decode(), content=body)).text == "success"
        await worker.run_tenant_job(engine, settings, CATCH_UP, other_tenant.id)
        shown = (await gql.data(other_tenant.key, CONSENTS, {"id": mei}))["customer"]
    in_force = {}
    for consent in shown["consents"]:  # newest first
        in_force.setdefault(consent["purpose"], consent["granted"])
    assert in_force == {"MARKETING": False, "SURVEYS": False}
    async with tenant_transaction(engine, other_tenant.id) as session:
        pending = await session.scalar(text("SELECT count(*) FROM webhook_events WHERE processed_at IS NULL"))
    assert pending == 0
    logged = every_log_line()
    assert [s for s in {SECRET, TOKEN, AES_KEY, *account.access} if s in logged] == []


INVITE = """mutation($input: InviteToSurveyInput!) { inviteToSurvey(input: $input) {
  invitations { link status deliveredAt deliveryError deliveryRetryAt customer { id } } skippedQuietPeriod skippedNoConsent
  userErrors { code } } }"""


async def follows(
    engine: AsyncEngine, settings: Settings, client: httpx.AsyncClient, tenant: Tenant, account: WeChatStandIn,
    hook: str, *pushes: str,
) -> None:  # fmt: skip
    for push in pushes:
        signed_url, body = account.push(hook, push)
        assert (await client.post(httpx.URL(signed_url).raw_path.decode(), content=body)).text == "success"
    await worker.run_tenant_job(engine, settings, CATCH_UP, tenant.id)


async def test_survey_invitations_go_out_as_template_messages_to_followers_who_consented(
    engine: AsyncEngine, settings: Settings, gql: GraphQLClient, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    account = WeChatStandIn(APPID, SECRET, TOKEN, encoding_aes_key=AES_KEY, daily_quota=2)
    async with serving(account.app) as url:
        hook = (await connect(gql, tenant, url))["webhookUrl"]
        people = [account.follow(o) for o in ("oMei0001", "oLi00001", "oZhao001", "oWu00001")]
        await follows(engine, settings, client, tenant, account, hook, *people)
        await follows(engine, settings, client, tenant, account, hook, account.unfollow("oLi00001"))
        mei, li, zhao, wu = [
            await customer_of(engine, tenant, o) for o in ("oMei0001", "oLi00001", "oZhao001", "oWu00001")
        ]
        survey_id = await survey(gql, tenant, channels=["wechat"])

        async def invite(people: list[str | None], key: str) -> dict[str, Any]:
            given = {"surveyId": survey_id, "customerIds": people, "channel": "wechat", "campaignKey": key}
            return dict((await gql.data(tenant.key, INVITE, {"input": given}))["inviteToSurvey"])

        first = await invite([mei, li], "k1")
        assert (first["skippedNoConsent"], len(first["invitations"])) == (1, 1)  # Li unfollowed: not invited
        (sent,) = account.sent
        assert sent["touser"] == "oMei0001" and sent["url"] == first["invitations"][0]["link"]
        assert sent["template_id"] == "tmpl-survey" and first["invitations"][0]["deliveredAt"] is not None
        again = await invite([mei], "k2")
        assert again["skippedQuietPeriod"] == 1 and len(account.sent) == 1  # the quiet period holds
        account.expire_access_tokens()  # refreshed on the way
        both = await invite([zhao, wu], "k3")
        delivered = {i["customer"]["id"]: i for i in both["invitations"]}
        assert [m["touser"] for m in account.sent] == ["oMei0001", "oZhao001"]
        assert (delivered[zhao]["deliveredAt"] is not None, delivered[zhao]["deliveryError"]) == (True, None)
        # The account's daily quota is spent: WeChat refuses, the invitation says why and when it
        # is tried again; the job then sends it, once the quota allows.
        assert delivered[wu]["deliveredAt"] is None and "45009" in delivered[wu]["deliveryError"]
        retry_at = datetime.fromisoformat(delivered[wu]["deliveryRetryAt"])
        assert retry_at > datetime.now(UTC) + timedelta(hours=1)
        account.daily_quota = 3
        link_for = lambda i: links.link(settings, i)  # noqa: E731
        async with tenant_transaction(engine, tenant.id) as session:
            assert await nps.redeliver(session, link_for, now=retry_at - timedelta(minutes=1)) == 0
            assert await nps.redeliver(session, link_for, now=retry_at) == 1
    assert [m["touser"] for m in account.sent] == ["oMei0001", "oZhao001", "oWu00001"]
    async with tenant_transaction(engine, tenant.id) as session:
        undelivered = await session.scalar(
            text("SELECT count(*) FROM nps_invitations WHERE status = 'created' AND delivered_at IS NULL")
        )
    assert undelivered == 0


CONSENT_COUNTS = text(
    """SELECT i.value, count(c.id) FILTER (WHERE c.granted) AS granted, count(DISTINCT c.purpose) AS purposes
         FROM customer_identities i LEFT JOIN consents c ON c.customer_id = i.customer_id
        WHERE i.kind = 'wechat_openid' GROUP BY i.value"""
)


async def test_followers_are_handled_once_through_platform_failures_and_killed_workers(
    engine: AsyncEngine, settings: Settings, gql: GraphQLClient, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    account = WeChatStandIn(APPID, SECRET, TOKEN, encoding_aes_key=AES_KEY, failure_rate=0.05, seed=3)
    openids = [f"oFan{n:05d}" for n in range(400)]
    async with serving(account.app) as url:
        hook = (await connect(gql, tenant, url))["webhookUrl"]
        for openid in openids:
            signed_url, body = account.push(hook, account.follow(openid))
            assert (
                await client.post(httpx.URL(signed_url).raw_path.decode(), content=body)
            ).text == "success"
        # Killed after it is ready, or after a committed run, a moment later.
        kills = await kill_and_finish(
            "catch_up", tenant.id, settings, seed=20261127, kills=4, lines=2, pause=0.8
        )
    assert kills >= 2
    async with tenant_transaction(engine, tenant.id) as session:
        counts = {r.value: (r.granted, r.purposes) for r in await session.execute(CONSENT_COUNTS)}
        customers = await session.scalar(text("SELECT count(*) FROM customers"))
    assert counts == {openid: (2, 2) for openid in openids}  # marketing and surveys, granted once each
    assert customers == len(openids)


async def test_workers_that_find_the_token_expired_at_once_refresh_it_once(
    engine: AsyncEngine, settings: Settings, gql: GraphQLClient, tenant: Tenant
) -> None:
    account = WeChatStandIn(APPID, SECRET, TOKEN, encoding_aes_key=AES_KEY)
    async with serving(account.app) as url:
        connection = await connect(gql, tenant, url)
        async with tenant_transaction(engine, tenant.id) as session:
            stored = await session.get(Connection, (tenant.id, connection["pk"]))
            assert stored is not None
            expired = service.grant_of(vault(settings), stored)
        account.expire_access_tokens()
        before = account.token_requests

        async def worker_refreshes() -> bool:
            async with Platforms() as platforms:
                return await service.refresh_grant(
                    engine, vault(settings), platforms, tenant.id, connection["pk"], refused=expired
                )

        refreshed = await asyncio.gather(*(worker_refreshes() for _ in range(4)))
        async with tenant_transaction(engine, tenant.id) as session:
            stored = await session.get(Connection, (tenant.id, connection["pk"]))
            assert stored is not None
            fresh = service.grant_of(vault(settings), stored).access_token.get_secret_value()
    # One asked WeChat; the others waited for it and took its token.
    assert refreshed == [True] * 4 and account.token_requests - before == 1
    assert fresh in account.access and account.access[fresh] > time.time()


async def test_one_run_of_the_job_takes_a_burst_of_follows_batch_after_batch(
    engine: AsyncEngine, settings: Settings, gql: GraphQLClient, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    account = WeChatStandIn(APPID, SECRET, TOKEN, encoding_aes_key=AES_KEY)
    async with serving(account.app) as url:
        hook = (await connect(gql, tenant, url))["webhookUrl"]
        pushes = [account.follow(f"oBurst{n:05d}") for n in range(450)]  # more than two batches
        await follows(engine, settings, client, tenant, account, hook, *pushes)  # one run of the job
    async with tenant_transaction(engine, tenant.id) as session:
        pending = await session.scalar(text("SELECT count(*) FROM webhook_events WHERE processed_at IS NULL"))
        customers = await session.scalar(text("SELECT count(*) FROM customers"))
    assert (pending, customers) == (0, 450)


async def test_a_configuration_wechat_would_not_take_is_refused_field_by_field(
    gql: GraphQLClient, tenant: Tenant
) -> None:
    config = {"appid": "not-an-appid", "secret": SECRET, "token": TOKEN, "encoding_aes_key": "short",
              "welcome_message": "]]><xml>", "unknown": 1}  # fmt: skip
    created = await gql.data(
        tenant.key, CREATE, {"input": {"connector": "wechat", "name": "Bad", "config": config}}
    )
    assert created["createConnection"]["connection"] is None
    assert {(e["field"], e["code"]) for e in created["createConnection"]["userErrors"]} == {
        ("config.appid", "INVALID_CONFIG"),
        ("config.encoding_aes_key", "INVALID_CONFIG"),
        ("config.welcome_message", "INVALID_CONFIG"),
        ("config.unknown", "INVALID_CONFIG"),
    }
