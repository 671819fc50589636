"""Console sessions ended before their time (signed out): their nonces, kept in Redis until
the session would have ended anyway, so a copied cookie opens nothing after sign-out."""

from __future__ import annotations

from redis.asyncio import Redis

from storage.cache import redis_errors


def _key(namespace: str, nonce: str) -> str:
    return f"{namespace}:console:ended:{nonce}"


async def end(redis: Redis, namespace: str, nonce: str, seconds: int) -> None:
    with redis_errors(redis, "ending a console session"):
        await redis.set(_key(namespace, nonce), b"1", ex=max(1, seconds))


async def ended(redis: Redis, namespace: str, nonce: str) -> bool:
    with redis_errors(redis, "checking a console session"):
        return bool(await redis.exists(_key(namespace, nonce)))
