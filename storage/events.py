"""Redis keys and the pub/sub channel that keep every API process in step.

Keys live in the deployment's Redis database, but pub/sub is global to the server: so each
deployment has its own channel, named by its namespace (`Settings.event_namespace`: the Redis
database number and the deployment's name), and every message carries that namespace too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
from redis.asyncio import Redis

from storage.cache import redis_errors


def profile_key(user_id: str) -> str:
    """A user's profile recomputed after their latest interactions."""
    return f"recs:profile:{user_id}"


def ranked_key(user_id: str) -> str:
    """A user's list ranked from their refreshed profile, stamped with that profile's time."""
    return f"recs:ranked:{user_id}"


def stored_key() -> str:
    """Who has a stored profile: user ids scored by the time their profile was stored."""
    return "recs:profiles:stored"


def noted_key() -> str:
    """From when on every stored profile is noted under `stored_key` (epoch seconds)."""
    return "recs:profiles:noted-since"


def lists_key(hours: int) -> str:
    """Every trending list of one window, published together."""
    return f"recs:trending:{hours}:lists"


def popular_key() -> str:
    """The all-history popular lists, with the change marks they were computed at."""
    return "recs:popular"


def generation_key(hours: int) -> str:
    """The generation of the lists under `lists_key(hours)`: read often, a few bytes."""
    return f"recs:trending:{hours}:generation"


def channel(namespace: str) -> str:
    return f"recs:{namespace}:events"


async def publish(redis: Redis, namespace: str, kind: str, **fields: Any) -> None:
    message = {"type": kind, "namespace": namespace, **fields}
    with redis_errors(redis, f"announcing {kind}"):
        await redis.publish(channel(namespace), orjson.dumps(message))


# The event `listen` yields once Redis confirms the subscription: every message published
# from then on is heard, so state read after it misses nothing that the channel announces.
SUBSCRIBED = "subscribed"


async def listen(redis: Redis, namespace: str) -> AsyncIterator[dict[str, Any]]:
    """The deployment's events as they are published, after one SUBSCRIBED event of its
    own, until the connection is lost (then CacheUnavailable: the caller subscribes again)."""
    with redis_errors(redis, "listening for events", pause=False):
        async with redis.pubsub() as subscription:
            await subscription.subscribe(channel(namespace))
            async for message in subscription.listen():
                if message.get("type") == "message":
                    yield orjson.loads(message["data"])
                elif message.get("type") == "subscribe":
                    yield {"type": SUBSCRIBED, "namespace": namespace}
