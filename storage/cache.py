"""Redis errors, translated where the driver is called, as database_errors() does for
PostgreSQL: a refused, lost or timed-out connection becomes CacheUnavailable (a 503, or a
degraded answer where the caller has one).

A Redis that hangs costs each call its full timeout. So once a call to a client times out,
the next calls through that client fail at once for `PAUSE_SECONDS`, and then it is asked
again: while Redis hangs, one request in a few seconds waits, not every one.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from redis.asyncio import Redis
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeout

from common.errors import CacheUnavailable

PAUSE_SECONDS = 3.0
# Client id -> monotonic time before which its calls are not tried.
_paused: dict[int, float] = {}


@contextmanager
def redis_errors(redis: Redis, what: str, *, pause: bool = True) -> Iterator[None]:
    """Translate driver errors for a call through `redis`; `pause=False` for calls that must
    reach Redis whatever happened just before (a readiness check, the event listener)."""
    if pause and _paused.get(id(redis), 0.0) > time.monotonic():
        raise CacheUnavailable(f"Redis is unavailable ({what}): it timed out moments ago")
    try:
        yield
    except (RedisTimeout, TimeoutError) as exc:
        _paused[id(redis)] = time.monotonic() + PAUSE_SECONDS
        raise CacheUnavailable(f"Redis is unavailable ({what}): it did not answer in time") from exc
    except (RedisError, OSError) as exc:
        raise CacheUnavailable(f"Redis is unavailable ({what}): {exc}") from exc
    _paused.pop(id(redis), None)


async def ping(redis: Redis) -> None:
    """Raise CacheUnavailable unless Redis answers."""
    with redis_errors(redis, "ping", pause=False):
        await redis.ping()
