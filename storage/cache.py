"""Redis errors, translated where the driver is called, as database_errors() does for
PostgreSQL: a refused, lost or timed-out connection becomes CacheUnavailable (a 503, or a
degraded answer where the caller has one)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from redis.asyncio import Redis
from redis.exceptions import RedisError

from common.errors import CacheUnavailable


@contextmanager
def redis_errors(what: str) -> Iterator[None]:
    try:
        yield
    except (RedisError, OSError) as exc:
        raise CacheUnavailable(f"Redis is unavailable ({what}): {exc}") from exc


async def ping(redis: Redis) -> None:
    """Raise CacheUnavailable unless Redis answers."""
    with redis_errors("ping"):
        await redis.ping()
