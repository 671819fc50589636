"""Events on Kafka (confluent-kafka, librdkafka), for deployments that have a cluster.

The producer is idempotent and waits for every in-sync replica (acks=all): `publish` returns
once the brokers have each message. The consumer commits offsets by hand: per partition, up
to the first message not yet stored, so a message held back (an interaction waiting for its
item) is taken again after a crash along with whatever followed it; event ids make those
count once. librdkafka's calls block, so each runs on a thread, one at a time per client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

from confluent_kafka import (
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from common.errors import DependencyError
from common.settings import EventSettings
from storage.bus import Message

T = TypeVar("T")
# librdkafka's own log lines (a broker unreachable, say) go to this logger, not to stderr.
log = logging.getLogger(__name__)
# How long a publish waits for the brokers before it fails (the outbox keeps the events).
PUBLISH_SECONDS = 10.0
# Where a replay of the dead letters records how far it got (Kafka keeps its messages).
REPLAY_GROUP_SUFFIX = ".replay"


class BrokerUnavailable(DependencyError):
    """The Kafka cluster did not answer, or refused."""


def client_config(settings: EventSettings) -> dict[str, Any]:
    """The brokers, TLS and SASL as librdkafka spells them."""
    assert settings.url is not None
    parts = urlsplit(settings.url)
    tls = parts.scheme == "kafka+ssl"
    sasl = settings.sasl_username is not None
    config: dict[str, Any] = {
        "bootstrap.servers": parts.netloc,
        "security.protocol": ("SASL_SSL" if tls else "SASL_PLAINTEXT")
        if sasl
        else ("SSL" if tls else "PLAINTEXT"),
    }
    if sasl:
        assert settings.sasl_password is not None
        config |= {
            "sasl.mechanism": settings.sasl_mechanism,
            "sasl.username": settings.sasl_username,
            "sasl.password": settings.sasl_password.get_secret_value(),
        }
    if tls and settings.ssl_ca_file is not None:
        config["ssl.ca.location"] = str(settings.ssl_ca_file)
    return config


class KafkaBus:
    def __init__(self, settings: EventSettings, consumer: str) -> None:
        self.settings, self.name = settings, consumer
        self.config = client_config(settings) | {"logger": log}
        self._producer: Producer | None = None
        self._consumer: Consumer | None = None
        self._subscribed: tuple[str, ...] = ()
        # Per (topic, partition): offsets taken and not yet committed.
        self._open: dict[tuple[str, int], set[int]] = defaultdict(set)
        # Per (topic, partition): the highest offset taken, so a commit never moves back.
        self._taken: dict[tuple[str, int], int] = {}
        self._lock = asyncio.Lock()

    async def _run(self, work: Callable[[], T]) -> T:
        async with self._lock:
            try:
                return await asyncio.to_thread(work)
            except KafkaException as exc:
                raise BrokerUnavailable(f"Kafka: {exc}") from exc

    def _producer_now(self) -> Producer:
        if self._producer is None:
            self._producer = Producer(
                self.config
                | {
                    "enable.idempotence": True,
                    "acks": "all",
                    "linger.ms": 5,
                    "client.id": self.name,
                }
            )
        return self._producer

    async def ensure(self, topics: Sequence[str]) -> None:
        admin = AdminClient(self.config)

        def create() -> None:
            existing = admin.list_topics(timeout=PUBLISH_SECONDS).topics
            missing = [NewTopic(t, num_partitions=6) for t in topics if t not in existing]
            if not missing:
                return
            for topic, future in admin.create_topics(missing).items():
                try:
                    future.result(timeout=PUBLISH_SECONDS)
                except KafkaException as exc:
                    if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                        raise BrokerUnavailable(f"Kafka: creating {topic}: {exc}") from exc

        await self._run(create)

    async def publish(
        self, topic: str, values: Sequence[bytes], traceparents: Sequence[str | None] = ()
    ) -> None:
        producer = self._producer_now()
        failures: list[str] = []
        marks = list(traceparents) or [None] * len(values)

        def send() -> None:
            def delivered(error: KafkaError | None, _: Any) -> None:
                if error is not None:
                    failures.append(str(error))

            for value, mark in zip(values, marks, strict=True):
                headers: list[tuple[str, str | bytes | None]] | None = (
                    [("traceparent", mark.encode())] if mark else None
                )
                while True:
                    try:
                        producer.produce(topic, value, headers=headers, on_delivery=delivered)
                        break
                    except BufferError:  # the local queue is full: let it drain
                        producer.poll(0.1)
            left = producer.flush(PUBLISH_SECONDS)
            if left:
                failures.append(f"{left} message(s) not delivered in {PUBLISH_SECONDS:.0f}s")

        await self._run(send)
        if failures:
            raise BrokerUnavailable(f"Kafka: publishing to {topic}: {failures[0]}")

    def _consumer_for(self, topics: Sequence[str]) -> Consumer:
        if self._consumer is None:
            self._consumer = Consumer(
                self.config
                | {
                    "group.id": self.settings.group,
                    "client.id": self.name,
                    "enable.auto.commit": False,
                    "auto.offset.reset": "earliest",
                    "session.timeout.ms": self.settings.session_timeout_ms,
                    "heartbeat.interval.ms": max(100, self.settings.session_timeout_ms // 10),
                    # A rebalance waits this long for members to rejoin: a batch is stored
                    # (or a pause for PostgreSQL ends) well within it.
                    "max.poll.interval.ms": 2 * self.settings.session_timeout_ms,
                }
            )
        if tuple(topics) != self._subscribed:
            self._consumer.subscribe(list(topics), on_revoke=self._revoked)
            self._subscribed = tuple(topics)
        return self._consumer

    def _revoked(self, _: Consumer, partitions: list[TopicPartition]) -> None:
        # Another consumer takes these over from their committed offsets.
        for partition in partitions:
            self._open.pop((partition.topic, partition.partition), None)
            self._taken.pop((partition.topic, partition.partition), None)

    async def take(self, topics: Sequence[str], limit: int, wait_seconds: float) -> list[Message]:
        consumer = self._consumer_for(topics)

        def poll() -> list[Any]:
            # The first message as soon as it comes (consume() would wait out its timeout for
            # a full batch), then whatever else is ready.
            first = consumer.poll(wait_seconds)
            if first is None:
                return []
            return [first, *consumer.consume(limit - 1, 0.005)] if limit > 1 else [first]

        polled = await self._run(poll)
        found = []
        for record in polled:
            error = record.error()
            if error is not None:
                # An error event among the records (a broker gone, say) is logged and passed
                # over: the records beside it are still this consumer's to store.
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("Kafka: %s", error)
                continue
            topic, partition, offset = record.topic(), record.partition(), record.offset()
            assert topic is not None and partition is not None and offset is not None
            headers = dict(record.headers() or [])
            mark = headers.get("traceparent")
            kind, millis = record.timestamp()
            self._open[(topic, partition)].add(offset)
            self._taken[(topic, partition)] = max(self._taken.get((topic, partition), -1), offset)
            found.append(
                Message(
                    topic,
                    f"{partition}:{offset}",
                    record.value() or b"",
                    mark.decode() if isinstance(mark, bytes) else None,
                    partition,
                    offset,
                    millis / 1000 if kind != TIMESTAMP_NOT_AVAILABLE else None,
                )
            )
        return found

    async def hold(self, messages: Sequence[Message]) -> None:
        return None  # a partition stays this consumer's while it polls

    async def commit(self, messages: Sequence[Message]) -> None:
        """Mark these stored, and commit each partition up to its first open message."""
        if self._consumer is None or not messages:
            return
        touched = set()
        for message in messages:
            key = (message.topic, message.partition)
            self._open[key].discard(message.offset)
            touched.add(key)
        offsets = []
        for key in touched:
            # Up to the first message still open, else past the highest taken: never back
            # over what an earlier commit passed.
            still = self._open.get(key)
            upto = min(still) if still else self._taken.get(key, -1) + 1
            offsets.append(TopicPartition(key[0], key[1], upto))
        consumer = self._consumer
        await self._run(lambda: consumer.commit(offsets=offsets, asynchronous=False))

    async def lag(self, topics: Sequence[str]) -> dict[str, int]:
        probe = Consumer(self.config | {"group.id": self.settings.group, "client.id": "lag"})

        def measure() -> dict[str, int]:
            try:
                found: dict[str, int] = {}
                metadata = probe.list_topics(timeout=PUBLISH_SECONDS).topics
                for topic in topics:
                    if topic not in metadata:
                        found[topic] = 0
                        continue
                    partitions = [TopicPartition(topic, p) for p in metadata[topic].partitions]
                    committed = probe.committed(partitions, timeout=PUBLISH_SECONDS)
                    total = 0
                    for partition in committed:
                        low, high = probe.get_watermark_offsets(partition, timeout=PUBLISH_SECONDS)
                        start = partition.offset if partition.offset >= 0 else low
                        total += max(0, high - start)
                    found[topic] = total
                return found
            finally:
                probe.close()

        return await self._run(measure)

    async def read(self, topic: str, limit: int) -> list[Message]:
        """The next `limit` messages of `topic` past those `remove`d (the replay's group)."""
        reader = Consumer(
            self.config
            | {
                "group.id": self.settings.group + REPLAY_GROUP_SUFFIX,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": self.settings.session_timeout_ms,
            }
        )

        def drain() -> list[Message]:
            # Assigned, not subscribed: no group join to wait for. It starts where the
            # replay's group committed (`remove`), and stops at the end of each partition.
            found: list[Message] = []
            try:
                metadata = reader.list_topics(topic, timeout=PUBLISH_SECONDS).topics
                if topic not in metadata or metadata[topic].error is not None:
                    return found
                partitions = [TopicPartition(topic, p) for p in metadata[topic].partitions]
                starts = reader.committed(partitions, timeout=PUBLISH_SECONDS)
                ends: dict[int, int] = {}
                for start in starts:
                    low, high = reader.get_watermark_offsets(start, timeout=PUBLISH_SECONDS)
                    if start.offset < 0:
                        start.offset = low
                    if start.offset < high:
                        ends[start.partition] = high
                reader.assign([p for p in starts if p.partition in ends])
                while ends and len(found) < limit:
                    batch = reader.consume(min(500, limit - len(found)), 1.0)
                    if not batch:
                        break
                    for record in batch:
                        where = (record.partition(), record.offset())
                        if record.error() is not None or where[0] is None or where[1] is None:
                            continue
                        found.append(
                            Message(
                                topic,
                                f"{where[0]}:{where[1]}",
                                record.value() or b"",
                                partition=where[0],
                                offset=where[1],
                            )
                        )
                        if where[1] + 1 >= ends.get(where[0], 0):
                            ends.pop(where[0], None)
            finally:
                reader.close()
            return found[:limit]

        return await self._run(drain)

    async def remove(self, messages: Sequence[Message]) -> None:
        """Kafka keeps its messages: the replay's group commits past these instead, so the
        next `read` starts after them."""
        if not messages:
            return
        ends: dict[tuple[str, int], int] = {}
        for message in messages:
            key = (message.topic, message.partition)
            ends[key] = max(ends.get(key, -1), message.offset)
        offsets = [TopicPartition(t, p, o + 1) for (t, p), o in ends.items()]
        committer = Consumer(self.config | {"group.id": self.settings.group + REPLAY_GROUP_SUFFIX})

        def commit() -> None:
            try:
                committer.commit(offsets=offsets, asynchronous=False)
            finally:
                committer.close()

        await self._run(commit)

    async def close(self) -> None:
        consumer, producer = self._consumer, self._producer
        self._consumer = self._producer = None

        def shut() -> None:
            if consumer is not None:
                with contextlib.suppress(KafkaException, RuntimeError):
                    consumer.close()
            if producer is not None:
                producer.flush(PUBLISH_SECONDS)

        await asyncio.to_thread(shut)
