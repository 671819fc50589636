"""Rate limits per key, per client address and for wrong tokens, shared through Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from common.errors import TooManyRequests
from common.settings import RateSettings, Settings
from service.auth import Principal
from service.ratelimit import RateLimiter, estimate, route_kind, wait_seconds
from tests.helpers import assert_error


def rules(**limits: int) -> RateSettings:
    """Limits turned on (the suite's environment turns them off), the defaults but `limits`."""
    return RateSettings(enabled=True, **limits)  # type: ignore[arg-type]


@pytest.fixture
def limits(app: FastAPI) -> Iterator[RateLimiter]:
    """The app's limiter, turned on; its settings are put back after the test."""
    limiter: RateLimiter = app.state.application.limiter
    before = limiter.settings
    limiter.settings = rules()
    limiter._blocked.clear()
    yield limiter
    limiter.settings = before
    limiter._blocked.clear()


async def new_key(client: httpx.AsyncClient, role: str = "read") -> str:
    answer = await client.post("/api/v1/keys", json={"name": f"k-{role}", "role": role})
    token: str = answer.json()["token"]
    return token


@pytest.fixture
async def from_address(app: FastAPI) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """Clients of the app from two addresses, without a token of their own."""
    clients = {
        address: httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=(address, 40000)),
            base_url="http://recs.test",
        )
        for address in ("10.0.0.1", "10.0.0.2")
    }
    yield clients
    for http in clients.values():
        await http.aclose()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_read_key_over_its_limit_gets_429_with_retry_after_and_others_go_on(
    limits: RateLimiter,
    client: httpx.AsyncClient,
    from_address: dict[str, httpx.AsyncClient],
) -> None:
    limits.settings = rules(read_per_minute=5)
    first, second = await new_key(client), await new_key(client)
    http = from_address["10.0.0.1"]
    for _ in range(5):
        assert (
            await http.get("/api/v1/recommendations/u1", headers=bearer(first))
        ).status_code == 200
    refused = await http.get("/api/v1/recommendations/u1", headers=bearer(first))
    error = assert_error(refused, 429, "rate_limited")
    assert "500" not in error["message"] and "5 read requests per key" in error["message"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    # Another key, and the operator's, are not held back by it.
    assert (await http.get("/api/v1/recommendations/u1", headers=bearer(second))).status_code == 200
    for _ in range(10):
        assert (await client.get("/api/v1/items")).status_code == 200
    metrics = (await client.get("/metrics")).text
    assert 'recs_rate_limited_total{limit="read"} 1.0' in metrics


async def test_searches_and_builds_have_tighter_limits_than_reads(
    limits: RateLimiter, client: httpx.AsyncClient, from_address: dict[str, httpx.AsyncClient]
) -> None:
    limits.settings = rules(search_per_minute=2)
    token = await new_key(client)
    http = from_address["10.0.0.1"]
    for _ in range(2):
        answer = await http.post("/api/v1/search", json={"query": "x"}, headers=bearer(token))
        assert answer.status_code != 429
    answer = await http.post("/api/v1/search", json={"query": "x"}, headers=bearer(token))
    assert_error(answer, 429, "rate_limited")
    assert (await http.get("/api/v1/recommendations/u1", headers=bearer(token))).status_code == 200
    assert route_kind("POST", "/api/v1/index/builds") == "build"
    assert route_kind("DELETE", "/api/v1/items/x") == "write"
    assert route_kind("GET", "/api/v1/items/x/similar") == "read"


async def test_an_address_over_its_limit_is_refused_whatever_key_it_uses(
    limits: RateLimiter, client: httpx.AsyncClient, from_address: dict[str, httpx.AsyncClient]
) -> None:
    limits.settings = rules(address_per_minute=4)
    keys = [await new_key(client) for _ in range(3)]
    http = from_address["10.0.0.1"]
    statuses = [
        (await http.get("/api/v1/recommendations/u1", headers=bearer(keys[n % 3]))).status_code
        for n in range(6)
    ]
    assert statuses == [200, 200, 200, 200, 429, 429]
    other = await from_address["10.0.0.2"].get(
        "/api/v1/recommendations/u1", headers=bearer(keys[0])
    )
    assert other.status_code == 200


async def test_wrong_tokens_from_an_address_are_slowed_before_any_token_is_checked(
    limits: RateLimiter, client: httpx.AsyncClient, from_address: dict[str, httpx.AsyncClient]
) -> None:
    limits.settings = rules(failed_auth_per_minute=3)
    good = await new_key(client)
    guesser = from_address["10.0.0.1"]
    statuses = [
        (await guesser.get("/api/v1/recommendations/u1", headers=bearer(f"guess-{n}"))).status_code
        for n in range(5)
    ]
    assert statuses == [401, 401, 401, 429, 429]
    # Even a right token waits out the minute from that address; others are not affected.
    refused = await guesser.get("/api/v1/recommendations/u1", headers=bearer(good))
    assert_error(refused, 429, "rate_limited")
    assert int(refused.headers["Retry-After"]) >= 1
    assert (
        await from_address["10.0.0.2"].get("/api/v1/recommendations/u1", headers=bearer(good))
    ).is_success
    assert (await from_address["10.0.0.2"].get("/api/v1/recommendations/u1")).status_code == 401


async def test_processes_share_the_counts_through_redis(
    app: FastAPI, redis: Redis, settings: Settings, db: object
) -> None:
    shared = rules(read_per_minute=5, address_per_minute=0)
    one, two = (
        RateLimiter(shared, redis, settings.event_namespace, CollectorRegistry()) for _ in range(2)
    )
    caller = Principal("key-shared", "read")
    for limiter in (one, two, one, two, one):
        await limiter.admit(caller, "10.0.0.9", "GET", "/api/v1/items")
    with pytest.raises(TooManyRequests):
        await two.admit(caller, "10.0.0.9", "GET", "/api/v1/items")


async def test_with_redis_down_requests_go_through_unlimited(settings: Settings) -> None:
    down = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    limiter = RateLimiter(rules(read_per_minute=1), down, "x", CollectorRegistry())
    caller = Principal("key-down", "read")
    for _ in range(3):
        await limiter.admit(caller, "10.0.0.9", "GET", "/api/v1/items")
    await down.aclose()


def test_the_sliding_minute() -> None:
    # 30 s into the minute, half of the previous minute's 10 still count.
    assert estimate(3, 10, 30.0) == 8.0
    # Over because of this minute alone: only the next minute frees room.
    assert wait_seconds(5, 0, 20.0, 5) == 40
    # Over because of the previous minute: room comes once enough of it slid out.
    assert wait_seconds(2, 10, 30.0, 5) == 12  # 2 + 10 * (1 - t/60) < 5 from t = 42 s


async def test_console_pages_count_against_the_keys_limits_as_the_api_does(
    app: FastAPI, client: httpx.AsyncClient, limits: RateLimiter
) -> None:
    limits.settings = rules(read_per_minute=3)
    token = await new_key(client)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://recs.test"
    ) as browser:
        assert (await browser.post("/console/sign-in", data={"token": token})).status_code == 303
        shown = [(await browser.get("/console/trending")).status_code for _ in range(3)]
        assert shown == [200, 200, 200]
        refused = await browser.get("/console/trending")
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        # The same key's budget, through /api/v1: spent already.
        assert (await client.get("/api/v1/trending", headers=bearer(token))).status_code == 429
