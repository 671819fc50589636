"""Redis keys and the pub/sub channel that keep every API process in step."""

from __future__ import annotations

from typing import Any

import orjson
from redis.asyncio import Redis

CHANNEL = "recs:events"


def profile_key(user_id: str) -> str:
    """A user's profile recomputed after their latest interactions."""
    return f"recs:profile:{user_id}"


def trending_key(variant: str, hours: int, category: str | None) -> str:
    return f"recs:trending:{variant}:{hours}:{category if category is not None else '*'}"


async def publish(redis: Redis, kind: str, **fields: Any) -> None:
    await redis.publish(CHANNEL, orjson.dumps({"type": kind, **fields}))
