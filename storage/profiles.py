"""Users' profiles recomputed after their latest interactions, and the lists ranked from
them, kept in Redis where every API process reads them (service/profiles.py computes and
encodes both)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from redis.asyncio import Redis

from storage.cache import redis_errors
from storage.events import noted_key, profile_key, ranked_key, stored_key

# Notes are kept this much longer than the profiles they note: another process's clock may
# run behind this one's.
NOTE_MARGIN_SECONDS = 86_400


async def save(redis: Redis, profiles: Mapping[str, bytes], seconds: int, at: float) -> None:
    """Store encoded profiles by user id, each kept `seconds`, and note each user as stored
    at `at` (`stamps_since` reads that), in one round trip. Each save drops the notes older
    than `seconds` and NOTE_MARGIN_SECONDS: they outlive their profiles by that margin."""
    with redis_errors(redis, "storing profiles"):
        async with redis.pipeline(transaction=False) as pipe:
            for user_id, encoded in profiles.items():
                pipe.set(profile_key(user_id), encoded, ex=seconds)
            if profiles:
                pipe.zadd(stored_key(), dict.fromkeys(profiles, at), gt=True)
                pipe.zremrangebyscore(
                    stored_key(), "-inf", f"({at - seconds - NOTE_MARGIN_SECONDS}"
                )
            await pipe.execute()


async def stamped_since(redis: Redis) -> float:
    """From when on every stored profile has its note: from the start where every profile
    stored when a process first asks has one, else from that moment (a profile stored by
    an older release has none). The first to ask decides for all; the others read it."""
    with redis_errors(redis, "reading when profiles were first noted"):
        found = await redis.get(noted_key())
        if found is None:
            older, keys = False, []
            async for key in redis.scan_iter(match=profile_key("*"), count=NOTE_BATCH):
                keys.append(key)
                if len(keys) == NOTE_BATCH:
                    older, keys = await _unnoted(redis, keys), []
                    if older:
                        break
            older = older or await _unnoted(redis, keys)
            await redis.set(noted_key(), repr(time.time() if older else 0.0), nx=True)
            found = await redis.get(noted_key())
    return float(found) if found is not None else time.time()  # flushed meanwhile: from now


# Profile keys checked against the notes per round trip, the first time a process asks.
NOTE_BATCH = 1_000


async def _unnoted(redis: Redis, keys: list[bytes | str]) -> bool:
    """Whether any of these profile keys has no note."""
    if not keys:
        return False
    prefix = len(profile_key(""))
    users = [(k.decode() if isinstance(k, bytes) else k)[prefix:] for k in keys]
    return any(at is None for at in await redis.zmscore(stored_key(), users))


async def stamps_since(redis: Redis, since: float) -> dict[str, float]:
    """Each user whose profile was stored at or after `since`, with that time."""
    with redis_errors(redis, "reading who has a stored profile"):
        found = await redis.zrangebyscore(stored_key(), since, "+inf", withscores=True)
    stamps: dict[str, float] = {}
    for pair in found:  # (user id, score) pairs, withscores
        user_id, at = pair[0], pair[1]
        stamps[user_id.decode() if isinstance(user_id, bytes) else str(user_id)] = float(at)
    return stamps


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
