"""Users' profiles recomputed after their latest interactions, and the lists ranked from
them, kept in Redis where every API process reads them (service/profiles.py computes and
encodes both)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from redis.asyncio import Redis

from storage.cache import redis_errors
from storage.events import profile_key, ranked_key


async def save(redis: Redis, profiles: Mapping[str, bytes], seconds: int) -> None:
    """Store encoded profiles by user id, each kept `seconds`, in one round trip."""
    await _set_each(redis, profile_key, profiles, seconds, "storing profiles")


async def save_lists(redis: Redis, lists: Mapping[str, bytes], seconds: int) -> None:
    """Store encoded ranked lists by user id, each kept `seconds`, in one round trip."""
    await _set_each(redis, ranked_key, lists, seconds, "storing ranked lists")


async def load_with_list(redis: Redis, user_id: str) -> tuple[bytes | None, bytes | None]:
    """A user's encoded profile and ranked list (each None when none is stored), in one
    round trip."""
    with redis_errors(redis, "reading a profile"):
        found = await redis.mget(profile_key(user_id), ranked_key(user_id))
    profile, ranked = (f.encode() if isinstance(f, str) else f for f in found)
    return profile, ranked


async def _set_each(
    redis: Redis, key: Callable[[str], str], values: Mapping[str, bytes], seconds: int, what: str
) -> None:
    with redis_errors(redis, what):
        async with redis.pipeline(transaction=False) as pipe:
            for user_id, encoded in values.items():
                pipe.set(key(user_id), encoded, ex=seconds)
            await pipe.execute()
