"""Events on Redis Streams, in the deployment's own Redis: nothing else to run.

A topic is a stream; each entry has one field, `data`, holding the JSON. Streams are capped
at EVENTS_STREAM_MAXLEN entries (approximate trimming, which costs nothing extra). The
deployment's consumers share one consumer group: XREADGROUP hands each entry to one of
them, XACK commits it, and entries a consumer took but never acknowledged (it crashed) are
claimed by another after CLAIM_IDLE_MS.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from common.settings import EventSettings
from storage.bus import Message
from storage.cache import redis_errors

# An entry taken by a consumer and not acknowledged for this long is given to another: its
# consumer is taken to be gone. A consumer holding entries on purpose (an interaction
# waiting for its item) renews its hold (`hold`).
CLAIM_IDLE_MS = 30_000


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class StreamsBus:
    def __init__(self, redis: Redis, settings: EventSettings, consumer: str) -> None:
        self.redis, self.settings, self.consumer = redis, settings, consumer
        self.group = settings.group

    async def ensure(self, topics: Sequence[str]) -> None:
        with redis_errors(self.redis, "creating event streams"):
            for topic in topics:
                try:
                    # From the start: messages written before the first consumer are taken too.
                    await self.redis.xgroup_create(topic, self.group, id="0", mkstream=True)
                except ResponseError as exc:
                    if "BUSYGROUP" not in str(exc):
                        raise

    async def publish(
        self, topic: str, values: Sequence[bytes], traceparents: Sequence[str | None] = ()
    ) -> None:
        with redis_errors(self.redis, f"publishing to {topic}"):
            async with self.redis.pipeline(transaction=False) as pipe:
                for value in values:
                    pipe.xadd(
                        topic,
                        {"data": value},
                        maxlen=self.settings.stream_maxlen,
                        approximate=True,
                    )
                await pipe.execute()

    async def take(self, topics: Sequence[str], limit: int, wait_seconds: float) -> list[Message]:
        with redis_errors(self.redis, "taking events", pause=False):
            try:
                return await self._take(topics, limit, wait_seconds)
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
            # A Redis that came back empty (it keeps nothing): the streams and group again.
            await self.ensure(topics)
            return await self._take(topics, limit, wait_seconds)

    async def _take(self, topics: Sequence[str], limit: int, wait_seconds: float) -> list[Message]:
        found: list[Message] = []
        for topic in topics:
            # Entries of a consumer that stopped without acknowledging them.
            claimed: Any = await self.redis.xautoclaim(
                topic, self.group, self.consumer, CLAIM_IDLE_MS, "0-0", count=limit
            )
            found += [self._message(topic, entry) for entry in claimed[1] if entry[1]]
        if len(found) >= limit:
            return found[:limit]
        new: Any = await self.redis.xreadgroup(
            self.group,
            self.consumer,
            dict.fromkeys(topics, ">"),
            count=limit - len(found),
            block=max(1, int(wait_seconds * 1000)) if not found else None,
        )
        for topic, entries in new or []:
            found += [self._message(_text(topic), entry) for entry in entries]
        return found

    def _message(self, topic: str, entry: Any) -> Message:
        position, fields = entry
        text = _text(position)
        # An entry's id starts with the milliseconds at which Redis added it.
        at = int(text.split("-", 1)[0]) / 1000
        return Message(topic, text, bytes(fields.get(b"data", b"")), at=at)

    async def hold(self, messages: Sequence[Message]) -> None:
        """Keep these (taken, not committed) from being claimed by another consumer."""
        with redis_errors(self.redis, "holding events", pause=False):
            for topic, positions in _by_topic(messages).items():
                ids: list[Any] = list(positions)
                await self.redis.xclaim(topic, self.group, self.consumer, 0, ids, justid=True)

    async def commit(self, messages: Sequence[Message]) -> None:
        with redis_errors(self.redis, "committing events"):
            async with self.redis.pipeline(transaction=False) as pipe:
                for topic, positions in _by_topic(messages).items():
                    pipe.xack(topic, self.group, *positions)
                await pipe.execute()

    async def lag(self, topics: Sequence[str]) -> dict[str, int]:
        lags: dict[str, int] = {}
        with redis_errors(self.redis, "reading the consumer lag", pause=False):
            for topic in topics:
                try:
                    groups = await self.redis.xinfo_groups(topic)
                except ResponseError:  # no such stream yet
                    lags[topic] = 0
                    continue
                for group in groups:
                    if _text(group["name"]) == self.group:
                        # Not yet handed out, and handed out but not acknowledged.
                        lags[topic] = int(group.get("lag") or 0) + int(group.get("pending") or 0)
                lags.setdefault(topic, 0)
        return lags

    async def read(self, topic: str, limit: int) -> list[Message]:
        with redis_errors(self.redis, f"reading {topic}"):
            entries: Any = await self.redis.xrange(topic, count=limit)
        return [self._message(topic, entry) for entry in entries]

    async def remove(self, messages: Sequence[Message]) -> None:
        with redis_errors(self.redis, "removing events"):
            for topic, positions in _by_topic(messages).items():
                await self.redis.xdel(topic, *positions)

    async def close(self) -> None:
        await self.redis.aclose()


def _by_topic(messages: Sequence[Message]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = defaultdict(list)
    for message in messages:
        grouped[message.topic].append(message.position)
    return grouped
