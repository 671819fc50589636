"""The event transport: one interface, two backends, chosen by EVENTS_URL.

Unset: Redis Streams in the deployment's own Redis (`streams.py`); `kafka://` or
`kafka+ssl://`: a Kafka cluster (`kafka.py`, confluent-kafka). Both give at-least-once
delivery to a consumer group: a message taken and not committed comes back (to this
consumer, or to another once this one is gone), so a consumer commits only what it has
stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis

from common.settings import EventSettings


@dataclass(frozen=True)
class Message:
    """A message taken from a topic: its raw value, where it sits (`position`: a stream
    entry's id, or a Kafka partition and offset), and the trace context it carried."""

    topic: str
    position: str
    value: bytes
    traceparent: str | None = None
    partition: int = 0
    offset: int = 0
    # When the broker took it (epoch seconds), where it says.
    at: float | None = None


class Bus(Protocol):
    async def ensure(self, topics: Sequence[str]) -> None:
        """Create the topics (and this deployment's consumer group on them) where missing."""

    async def publish(
        self, topic: str, values: Sequence[bytes], traceparents: Sequence[str | None] = ()
    ) -> None:
        """Append messages; once this returns, the broker has them."""

    async def take(self, topics: Sequence[str], limit: int, wait_seconds: float) -> list[Message]:
        """Up to `limit` messages for this consumer: those of a consumer that stopped without
        committing first, then new ones, waiting up to `wait_seconds` for any."""

    async def hold(self, messages: Sequence[Message]) -> None:
        """Keep taken, uncommitted messages this consumer's (one waiting for its item): no
        other consumer takes them over meanwhile."""

    async def commit(self, messages: Sequence[Message]) -> None:
        """These messages are stored: they are not delivered to the group again."""

    async def lag(self, topics: Sequence[str]) -> dict[str, int]:
        """Per topic, the messages the group has not committed yet."""

    async def read(self, topic: str, limit: int) -> list[Message]:
        """The oldest `limit` messages of a topic, outside any group (the dead letters)."""

    async def remove(self, messages: Sequence[Message]) -> None:
        """Drop messages read with `read` (replayed dead letters), where the transport can;
        Kafka cannot, and remembers how far replays got instead."""

    async def close(self) -> None: ...


def open_bus(settings: EventSettings, redis_url: str, consumer: str) -> Bus:
    """The transport EVENTS_URL names, as consumer `consumer` of the deployment's group."""
    if settings.url is None:
        from storage.bus.streams import StreamsBus

        return StreamsBus(Redis.from_url(redis_url), settings, consumer)
    from storage.bus.kafka import KafkaBus

    return KafkaBus(settings, consumer)
