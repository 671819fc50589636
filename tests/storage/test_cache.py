"""Redis errors become CacheUnavailable, and a hung Redis costs one timeout in a few seconds."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.asyncio import Redis

from common.errors import CacheUnavailable
from storage import cache, profiles
from tests.service.test_auth import silent_server


async def test_a_hung_redis_times_out_once_then_calls_fail_at_once_for_a_while(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cache, "PAUSE_SECONDS", 0.5)
    server, port = await silent_server()
    hung = Redis.from_url(f"redis://127.0.0.1:{port}/0", socket_timeout=0.3)
    try:
        started = time.monotonic()
        with pytest.raises(CacheUnavailable, match="in time"):
            await profiles.load_with_list(hung, "u")
        assert 0.25 < time.monotonic() - started < 2
        started = time.monotonic()
        with pytest.raises(CacheUnavailable, match="moments ago"):
            await profiles.load_with_list(hung, "u")
        assert time.monotonic() - started < 0.05
        # A readiness check asks Redis itself.
        with pytest.raises(CacheUnavailable, match="in time"):
            await cache.ping(hung)
        await asyncio.sleep(0.6)  # the pause runs out
        started = time.monotonic()
        with pytest.raises(CacheUnavailable, match="in time"):
            await profiles.load_with_list(hung, "u")
        assert time.monotonic() - started > 0.25
    finally:
        await hung.aclose()
        server.close()


async def test_the_pause_is_per_client_and_ends_with_a_success(redis: Redis) -> None:
    server, port = await silent_server()
    hung = Redis.from_url(f"redis://127.0.0.1:{port}/0", socket_timeout=0.2)
    try:
        with pytest.raises(CacheUnavailable):
            await profiles.load_with_list(hung, "u")
        # Another client (the app's, on a live Redis) is not held back.
        await profiles.save(redis, {"u": b"{}"}, 60, 1.0)
        assert (await profiles.load_with_list(redis, "u")) == (b"{}", None)
    finally:
        await hung.aclose()
        server.close()
