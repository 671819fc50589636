"""Events on Redis Streams, in the test Redis database: the consumers store interactions and
items through the use cases, dead-letter what they cannot accept, hold interactions whose
items are on their way, survive a crash between store and commit, split the work in a group
and wait out PostgreSQL; the relay publishes the outbox."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

from common.errors import DatabaseUnavailable
from common.models import ItemIn
from common.settings import Settings
from devstack.servers import port_open, stop_process
from service.events.consumer import Consumer
from service.events.relay import Relay
from service.usecases import catalog, interactions
from storage import outbox
from storage.bus import Bus, open_bus
from storage.bus import streams as stream_bus
from tests.helpers import free_port, item

TOPICS = ("events", "interactions", "items", "dead")


@pytest.fixture
async def bus(db: object, settings: Settings) -> AsyncIterator[Bus]:
    opened = open_bus(settings.events, settings.redis.url, "producer")
    await opened.ensure([settings.events.topic(t) for t in TOPICS])
    yield opened
    await opened.close()


@contextlib.asynccontextmanager
async def consuming(
    app: FastAPI, settings: Settings, name: str = "c1", seconds: float = 10.0
) -> AsyncIterator[Consumer]:
    """A consumer of its own (its own bus connection) running until the block ends, given
    `seconds` to finish its batch and stop."""
    own = open_bus(settings.events, settings.redis.url, name)
    consumer = Consumer(app.state.application, own)
    task = asyncio.create_task(consumer.run())
    try:
        yield consumer
    finally:
        consumer.stop()
        await asyncio.wait_for(task, seconds)
        await own.close()


async def until(check: Callable[[], Any], seconds: float = 15.0) -> None:
    for _ in range(int(seconds * 10)):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the condition did not hold in time")


async def publish(bus: Bus, settings: Settings, topic: str, *bodies: Any) -> None:
    await bus.publish(
        settings.events.topic(topic),
        [b if isinstance(b, bytes) else orjson.dumps(b) for b in bodies],
    )


async def count(app: FastAPI, query: str = "SELECT count(*) FROM interactions") -> int:
    return int(await app.state.application.pool.fetchval(query))


async def dead(bus: Bus, settings: Settings) -> list[dict[str, Any]]:
    return [orjson.loads(m.value) for m in await bus.read(settings.events.topic("dead"), 100)]


async def test_interactions_and_items_are_stored_and_the_bad_are_dead_lettered(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings, bus: Bus
) -> None:
    catalog = [item(f"i{n}") for n in range(3)] + [item("gone")]
    await client.post("/api/v1/items/batch", json={"items": catalog})
    good = {"user_id": "u1", "item_id": "i1", "type": "view"}
    await publish(
        bus,
        settings,
        "interactions",
        good,
        [{**good, "item_id": "i2"}, {**good, "item_id": "i0", "type": "like", "event_id": "e1"}],
        b"{not json",
        {**good, "type": "teleport"},
        {"user_id": "u1"},
    )
    await publish(bus, settings, "items", item("i9"), {"item_id": "gone", "deleted": True})
    async with consuming(app, settings):
        await until(lambda: _equals(count(app), 3))
        await until(lambda: _equals(_lag(bus, settings), 0))
    letters = await dead(bus, settings)
    assert sorted(x["error"]["code"] for x in letters) == [
        "invalid_json",
        "invalid_message",
        "invalid_message",
    ]
    assert {x["original"] for x in letters} >= {"{not json"}
    assert all(x["topic"] == settings.events.topic("interactions") and x["at"] for x in letters)
    assert (await client.get("/api/v1/items/i9")).status_code == 200
    assert (await client.get("/api/v1/items/gone")).status_code == 404
    user = (await client.get("/api/v1/users/u1")).json()
    assert user["interaction_count"] == 3


async def test_an_interaction_waits_for_its_item_then_is_stored_or_dead_lettered(
    app: FastAPI, settings: Settings, bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    await publish(bus, settings, "interactions", view("late"))
    async with consuming(app, settings) as consumer:
        await until(lambda: _true(len(consumer.held) == 1))
        await publish(bus, settings, "items", item("late"))
        await until(lambda: _equals(count(app), 1))
        # Never on its way: dead-lettered once the wait is over (shortened here).
        events = settings.events.model_copy(update={"unknown_item_seconds": 0.5})
        monkeypatch.setattr(
            app.state.application, "settings", settings.model_copy(update={"events": events})
        )
        await publish(bus, settings, "interactions", view("never"))
        await until(lambda: _true(consumer.dead == 1))
    assert [x["error"]["code"] for x in await dead(bus, settings)] == ["unknown_item"]
    assert await count(app) == 1


async def test_a_crash_between_store_and_commit_repeats_messages_that_count_once(
    app: FastAPI, settings: Settings, bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    await stock(app, *(f"i{n}" for n in range(10)))
    # No event_id: the position of each message names its interactions.
    rows = [{"user_id": f"u{n}", "item_id": f"i{n}", "type": "view"} for n in range(10)]
    await publish(bus, settings, "interactions", *rows)
    crashed = open_bus(settings.events, settings.redis.url, "crashed")
    doomed = Consumer(app.state.application, crashed)

    async def lost(messages: Any) -> None:
        raise RuntimeError("the process died before committing")

    monkeypatch.setattr(crashed, "commit", lost)
    batch = await doomed._next_batch()
    with pytest.raises(RuntimeError):
        await doomed.handle(batch)
    await crashed.close()
    assert await count(app) == 10
    # Another consumer takes the uncommitted messages over and stores them again: once.
    monkeypatch.setattr(stream_bus, "CLAIM_IDLE_MS", 0)
    async with consuming(app, settings, "heir") as heir:
        await until(lambda: _true(heir.stored >= 10))
        await until(lambda: _equals(_lag(bus, settings), 0))
    assert await count(app) == 10


async def test_two_consumers_in_one_group_split_the_work(
    app: FastAPI, settings: Settings, bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    await stock(app, "i")
    # Small batches, so that neither takes everything at its first turn.
    events = settings.events.model_copy(update={"batch": 25})
    monkeypatch.setattr(
        app.state.application, "settings", settings.model_copy(update={"events": events})
    )
    rows = [{"user_id": f"u{n}", "item_id": "i", "type": "view"} for n in range(400)]
    await publish(bus, settings, "interactions", *rows)
    async with consuming(app, settings, "a") as first, consuming(app, settings, "b") as second:
        await until(lambda: _equals(count(app), 400), 30)
    assert first.stored > 0 and second.stored > 0
    assert first.stored + second.stored == 400


async def test_with_postgresql_down_the_consumer_waits_and_drops_nothing(
    app: FastAPI, settings: Settings, bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    await stock(app, "i")
    record = interactions.record_batch
    outage = {"left": 3}

    async def down(app: Any, rows: Any) -> Any:
        if outage["left"]:
            outage["left"] -= 1
            raise DatabaseUnavailable("PostgreSQL is unavailable")
        return await record(app, rows)

    monkeypatch.setattr(interactions, "record_batch", down)
    await publish(bus, settings, "interactions", {"user_id": "u", "item_id": "i", "type": "view"})
    async with consuming(app, settings) as consumer:
        await until(lambda: _equals(count(app), 1), 30)
    assert outage["left"] == 0 and consumer.dead == 0
    assert await dead(bus, settings) == []


async def test_the_relay_publishes_each_committed_change_as_an_event(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings, bus: Bus
) -> None:
    relay = Relay(app.state.application, bus)
    task = asyncio.create_task(relay.run())
    try:
        build = (await client.post("/api/v1/index/builds", json={"reason": "r"})).json()
        await until(lambda: _true(relay.published >= 1))
    finally:
        relay.stop()
        await task
    published = await bus.read(settings.events.topic("events"), 10)
    event = orjson.loads(published[0].value)
    assert event["type"] == "build.queued" and event["build_id"] == build["build_id"]
    assert event["deployment"] == settings.deployment and event["id"] and event["at"]
    assert await app.state.application.pool.fetchval("SELECT count(*) FROM event_outbox") == 0


async def test_dead_letters_are_replayed_once_fixed(
    client: httpx.AsyncClient, app: FastAPI, settings: Settings, bus: Bus
) -> None:
    events = settings.events.model_copy(update={"unknown_item_seconds": 0.0})
    application = app.state.application
    original = application.settings
    application.settings = settings.model_copy(update={"events": events})
    try:
        await publish(bus, settings, "interactions", view("soon"))
        async with consuming(app, settings) as consumer:
            await until(lambda: _true(consumer.dead == 1))
            listed = (await client.get("/api/v1/events/dead")).json()["letters"]
            assert [x["error"]["code"] for x in listed] == ["unknown_item"]
            await client.put("/api/v1/items/soon", json={"title": "Soon"})
            answer = await client.post("/api/v1/events/dead/replay", json={})
            assert answer.json() == {
                "replayed": 1,
                "by_topic": {settings.events.topic("interactions"): 1},
                "unreadable": 0,
            }
            await until(lambda: _equals(count(app), 1))
    finally:
        application.settings = original
    assert await dead(bus, settings) == []


async def stock(app: FastAPI, *item_ids: str) -> None:
    await catalog.put_items(app.state.application, [ItemIn(**item(i)) for i in item_ids])


def view(item_id: str) -> dict[str, str]:
    return {"user_id": "u", "item_id": item_id, "type": "view"}


async def _equals(value: Any, expected: Any) -> bool:
    return bool(await value == expected)


async def _true(value: bool) -> bool:
    return value


async def _lag(bus: Bus, settings: Settings) -> int:
    found = await bus.lag([settings.events.topic("interactions"), settings.events.topic("items")])
    return sum(found.values())


class OwnRedis:
    """A redis-server of this test's own, on a free port, that keeps nothing on disk."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        for _ in range(100):
            if port_open("127.0.0.1", self.port):
                return
            time.sleep(0.05)
        raise AssertionError("redis-server did not listen")

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, grace=5)
            self.process = None


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
async def test_a_broker_that_goes_away_delays_events_and_the_consumer_goes_on_after(
    app: FastAPI, settings: Settings, db: object
) -> None:
    server = OwnRedis()
    await asyncio.to_thread(server.start)
    own = open_bus(settings.events, f"redis://127.0.0.1:{server.port}/0", "own")
    application = app.state.application
    relay, consumer = Relay(application, own), Consumer(application, own)
    await stock(app, "i")
    await own.ensure([settings.events.topic(t) for t in TOPICS])
    relaying = asyncio.create_task(relay.run())
    consuming_task = asyncio.create_task(consumer.run())
    try:
        await asyncio.to_thread(server.stop)
        async with application.pool.acquire() as conn:
            await outbox.emit(conn, "version.activated", version=3)
        await asyncio.sleep(1.5)
        assert relay.published == 0  # the broker is away: the event waits in the outbox
        await asyncio.to_thread(server.start)  # back, empty
        await until(lambda: _true(relay.published == 1))
        await own.publish(settings.events.topic("interactions"), [orjson.dumps(view("i"))])
        await until(lambda: _equals(count(app), 1))
        published = await own.read(settings.events.topic("events"), 10)
    finally:
        relay.stop()
        consumer.stop()
        await asyncio.gather(relaying, consuming_task, return_exceptions=True)
        await own.close()
        await asyncio.to_thread(server.stop)
    assert [orjson.loads(m.value)["type"] for m in published] == ["version.activated"]


async def test_streams_are_capped(settings: Settings, db: object) -> None:
    capped = settings.events.model_copy(update={"stream_maxlen": 1_000, "prefix": "capped"})
    bus = open_bus(capped, settings.redis.url, "capper")
    try:
        topic = capped.topic("events")
        for _ in range(5):
            await bus.publish(topic, [b"{}"] * 1_000)
        # Approximate trimming: whole blocks of entries go, so a little more than the cap stays.
        assert 1_000 <= await bus.redis.xlen(topic) < 2_000  # type: ignore[attr-defined]
    finally:
        await bus.close()


async def test_a_message_redelivered_after_its_user_was_erased_is_dropped(
    client: httpx.AsyncClient,
    app: FastAPI,
    settings: Settings,
    bus: Bus,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await stock(app, "i")
    # No timestamp: the broker's time of the message stands for it.
    await publish(
        bus, settings, "interactions", {"user_id": "leaver", "item_id": "i", "type": "view"}
    )
    crashed = open_bus(settings.events, settings.redis.url, "crashed")
    doomed = Consumer(app.state.application, crashed)
    await doomed._store_interactions(await doomed._next_batch())
    await crashed.close()  # stored, never committed
    assert (await client.delete("/api/v1/users/leaver")).status_code == 204
    monkeypatch.setattr(stream_bus, "CLAIM_IDLE_MS", 0)
    async with consuming(app, settings, "heir"):
        await until(lambda: _equals(_lag(bus, settings), 0))
    assert (await client.get("/api/v1/users/leaver")).status_code == 404
    assert await count(app) == 0
