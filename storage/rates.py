"""Request counters per minute, shared by every API process: one Redis counter per limit and
minute, read together with the previous minute's for a sliding estimate."""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis

from storage.cache import redis_errors

WINDOW = 60


def rate_key(namespace: str, limit: str, subject: str) -> str:
    return f"recs:{namespace}:rate:{limit}:{subject}"


async def count(redis: Redis, keys: Sequence[str], minute: int) -> list[tuple[int, int]]:
    """Count one request against each key in `minute` (epoch seconds // 60), in one round
    trip. Returns each key's (count this minute, count the minute before)."""
    with redis_errors(redis, "counting requests"):
        async with redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.incr(f"{key}:{minute}")
                pipe.expire(f"{key}:{minute}", 2 * WINDOW)
                pipe.get(f"{key}:{minute - 1}")
            found = await pipe.execute()
    return [(int(found[3 * n]), int(found[3 * n + 2] or 0)) for n in range(len(keys))]
