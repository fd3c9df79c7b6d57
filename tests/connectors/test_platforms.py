"""The clients connectors call platforms with: retried as the platform asks, and paced per
connection across job runs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx

from brandloop.connections.platforms import Platforms, RetryPolicy
from brandloop.connectors import retry_after
from brandloop_plugins.shopee import ShopeeConnector

QUICK = RetryPolicy(attempts=4, wait_initial=0.001, wait_max=0.01, longest_retry_after=0.5)


def platform(*answers: int | Exception, retry: str | None = None) -> tuple[httpx.MockTransport, list[int]]:
    """A platform answering these statuses (or raising these errors) in turn, then 200."""
    seen: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(len(seen))
        if len(seen) <= len(answers):
            given = answers[len(seen) - 1]
            if isinstance(given, Exception):
                raise given
            return httpx.Response(given, headers={"retry-after": retry} if retry else {})
        return httpx.Response(200, json={"ok": True})

    return httpx.MockTransport(answer), seen


async def test_throttling_failures_and_timeouts_are_retried() -> None:
    for answers, retry in [((429,), "0"), ((503, 502, 500), None), ((httpx.ConnectTimeout("slow"),), None)]:
        transport, seen = platform(*answers, retry=retry)
        async with Platforms(policy=QUICK, transport=transport) as platforms:
            response = await platforms.client(uuid.uuid4(), ShopeeConnector()).get("https://p.example/x")
        assert response.status_code == 200 and len(seen) == len(answers) + 1


async def test_what_keeps_failing_reaches_the_connector_as_the_last_answer() -> None:
    transport, seen = platform(503, 503, 503, 503, 503)
    async with Platforms(policy=QUICK, transport=transport) as platforms:
        response = await platforms.client(uuid.uuid4(), ShopeeConnector()).get("https://p.example/x")
    assert response.status_code == 503 and len(seen) == QUICK.attempts
    # A wait longer than a request should hold is not waited: the sync engine schedules it.
    transport, seen = platform(429, retry="120")
    async with Platforms(policy=QUICK, transport=transport) as platforms:
        response = await platforms.client(uuid.uuid4(), ShopeeConnector()).get("https://p.example/x")
    assert response.status_code == 429 and len(seen) == 1
    # A client error is the connector's to read, not retried.
    transport, seen = platform(400)
    async with Platforms(policy=QUICK, transport=transport) as platforms:
        assert (
            await platforms.client(uuid.uuid4(), ShopeeConnector()).get("https://p.example/x")
        ).status_code == 400
    assert len(seen) == 1


async def test_a_connection_keeps_its_bucket_across_job_runs() -> None:
    one, other = uuid.uuid4(), uuid.uuid4()
    async with Platforms() as first, Platforms() as second:
        bucket = lambda p, c: p.client(c, ShopeeConnector())._transport._limiter  # noqa: E731
        assert bucket(first, one) is bucket(second, one)
        assert bucket(first, one) is not bucket(first, other)
        assert bucket(first, one).max_rate == ShopeeConnector.requests_per_second


def test_retry_after_is_read_in_both_forms() -> None:
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    seconds = httpx.Response(429, headers={"retry-after": "7"})
    date = httpx.Response(
        429, headers={"retry-after": format_datetime(now + timedelta(seconds=30), usegmt=True)}
    )
    assert retry_after(seconds, now) == 7.0 and retry_after(date, now) == 30.0
    assert retry_after(httpx.Response(429), now) is None
    assert retry_after(httpx.Response(429, headers={"retry-after": "soon"}), now) is None
