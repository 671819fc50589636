"""The event door: interactions and items from `<prefix>.interactions` and `<prefix>.items`,
stored through the same use cases as the batch endpoints.

A message is all or nothing: a JSON object, or an array of them, stored whole or not at all.
The consumer takes a batch, stores what it can, and commits (service/events/../storage/bus)
only what PostgreSQL has, so a crash between the two repeats messages; an interaction with
no `event_id` gets one from where its message sits (`<topic>@<position>#<n>`), so a repeat
counts once either way. What it cannot accept goes to `<prefix>.dead` with the reason and
is committed; consumption goes on:
- a message that is not JSON, or whose rows are not valid bodies: at once;
- an interaction naming an item not known yet: held (the item may be on its way on
  `<prefix>.items`) and tried again with each batch for EVENTS_UNKNOWN_ITEM_SECONDS.
With PostgreSQL (or Redis) down, the batch is kept and tried again, waiting longer each
time up to PAUSE_MAX_SECONDS, and nothing new is taken meanwhile: no message is dropped or
dead-lettered for an outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError

from common import tracing
from common.errors import DependencyError, InvalidInput
from common.models import Id, InteractionIn, ItemIn
from service.application import Application
from service.usecases import catalog, interactions
from storage.bus import Bus, Message

log = logging.getLogger(__name__)
PAUSE_MAX_SECONDS = 10.0
# How long `take` waits for new messages when none are held.
WAIT_SECONDS = 1.0
_ID: TypeAdapter[str] = TypeAdapter(Id)


@dataclass
class Parsed:
    """A message understood: its interactions, or its items to upsert and ids to delete."""

    message: Message
    interactions: list[InteractionIn] = field(default_factory=list)
    upserts: list[ItemIn] = field(default_factory=list)
    deletions: list[str] = field(default_factory=list)
    first_seen: float = field(default_factory=time.monotonic)
    # Why it can never be stored as it is: it goes to the dead topic.
    refused: Refused | None = None
    # The trace it carried: a Kafka header, or a `traceparent` property of its body.
    traceparent: str | None = None


class Refused(Exception):
    """A message that can never be stored as it is."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class Consumer:
    def __init__(self, app: Application, bus: Bus) -> None:
        self.app, self.bus = app, bus
        events = app.settings.events
        self.interactions_topic = events.topic("interactions")
        self.items_topic = events.topic("items")
        self.dead_topic = events.topic("dead")
        self.held: list[Parsed] = []  # interactions waiting for their items
        self.stored = self.dead = 0
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """Finish the batch in hand, commit it, and return from `run`."""
        self._stopping.set()

    async def run(self) -> None:
        pause = 0.0
        batch: list[Parsed] = []
        while not self._stopping.is_set():
            try:
                if not batch:
                    batch = await self._next_batch()
                await self.handle(batch)
                batch, pause = [], 0.0
            except DependencyError as exc:
                # PostgreSQL, Redis or the broker is away: keep the batch, take nothing new.
                pause = min(PAUSE_MAX_SECONDS, max(0.5, pause * 2))
                log.warning("events wait %.1f s (%d messages in hand): %s", pause, len(batch), exc)
                await self._hold_quietly([p.message for p in batch + self.held])
                await self._sleep(pause)

    async def _next_batch(self) -> list[Parsed]:
        events = self.app.settings.events
        wait = WAIT_SECONDS if not self.held else min(WAIT_SECONDS, 0.5)
        taken = await self.bus.take([self.interactions_topic, self.items_topic], events.batch, wait)
        parsed = []
        for message in taken:
            try:
                parsed.append(self.parse(message))
            except Refused as exc:
                # Dead-lettered in `handle`, which a failed publish retries with the batch.
                parsed.append(Parsed(message, refused=exc))
        return parsed

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _hold_quietly(self, messages: Sequence[Message]) -> None:
        with contextlib.suppress(DependencyError):
            await self.bus.hold(messages)

    def parse(self, message: Message) -> Parsed:
        try:
            body = orjson.loads(message.value)
        except orjson.JSONDecodeError as exc:
            raise Refused("invalid_json", f"not JSON: {exc}") from exc
        rows = body if isinstance(body, list) else [body]
        if not rows or not all(isinstance(r, dict) for r in rows):
            raise Refused("invalid_message", "expected a JSON object or an array of objects")
        marks = [row.pop("traceparent", None) for row in rows]
        parsed = Parsed(message, traceparent=message.traceparent or _first_text(marks))
        try:
            if message.topic == self.items_topic:
                for row in rows:
                    if row.get("deleted") is True:
                        parsed.deletions.append(_ID.validate_python(row.get("item_id")))
                    else:
                        parsed.upserts.append(ItemIn.model_validate(row))
            else:
                parsed.interactions = [
                    self._interaction(message, n, row) for n, row in enumerate(rows)
                ]
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"])
            raise Refused("invalid_message", f"{where}: {first['msg']}") from exc
        return parsed

    def _interaction(self, message: Message, n: int, row: dict[str, Any]) -> InteractionIn:
        if row.get("event_id") is None:
            # Where the message sits names the event: taken again, it counts once.
            row = {**row, "event_id": f"{message.topic}@{message.position}#{n}"}
        if row.get("timestamp") is None and message.at is not None:
            # When the broker took it, not when it is stored: a redelivery after an erasure
            # is then as old as it is, and the tombstone drops it.
            row = {**row, "timestamp": datetime.fromtimestamp(message.at, UTC).isoformat()}
        interaction = InteractionIn.model_validate(row)
        problem = interaction.problem(self.app.settings.interactions.types, datetime.now(UTC))
        if problem is not None:
            raise Refused("invalid_message", f"[{n}]: {problem}")
        return interaction

    async def handle(self, batch: list[Parsed]) -> None:
        """Store the batch and the held messages, commit what is stored, dead-letter what
        waited too long for its items."""
        mark = next((p.traceparent for p in batch if p.traceparent), None)
        with tracing.span("events.consume", mark, messages=len(batch)):
            refused = [p for p in batch if p.refused is not None]
            if refused:
                await self._dead_letter([(p.message, p.refused) for p in refused if p.refused])
                # In place: a retry of this batch (PostgreSQL down) does not send them again.
                batch[:] = [p for p in batch if p.refused is None]
            items = [p for p in batch if p.message.topic == self.items_topic]
            await self._store_items(items)
            waiting = [p for p in batch if p.message.topic != self.items_topic]
            stored, self.held = await self._store_interactions(self.held + waiting)
            overdue = self._overdue()
            if overdue:
                await self._dead_letter(
                    [(p.message, Refused("unknown_item", _unknown(p))) for p in overdue]
                )
            done = [p.message for p in items + stored]
            if stored:
                # The API processes refresh these users' profiles (this one serves no one).
                await self.app.serving.announce("profiles_queued")
            if done:
                await self.bus.commit(done)
            if self.held:
                await self.bus.hold([p.message for p in self.held])

    async def _store_items(self, items: list[Parsed]) -> None:
        """Upserts and deletions in message order: runs of each in one batch."""
        deletions: list[str] = []
        upserts: list[ItemIn] = []
        for parsed in items:
            if parsed.deletions:
                if upserts:  # what came before is stored before this deletion
                    await catalog.put_items(self.app, upserts)  # a repeated id keeps its last
                    upserts = []
                deletions += parsed.deletions
            if parsed.upserts:
                if deletions:
                    await catalog.delete_items(self.app, deletions)
                    deletions = []
                upserts += parsed.upserts
        if deletions:
            await catalog.delete_items(self.app, deletions)
        if upserts:
            await catalog.put_items(self.app, upserts)
        self.stored += len(items)

    async def _store_interactions(
        self, messages: list[Parsed]
    ) -> tuple[list[Parsed], list[Parsed]]:
        """Store every message whose items are all known, in one batch; (stored, held)."""
        ready, held = list(messages), []
        while ready:
            rows = [i for p in ready for i in p.interactions]
            try:
                await interactions.record_batch(self.app, rows)
                break
            except interactions.UnknownItemsInBatch as exc:
                unknown = {str(d.get("item_id")) for d in exc.details or []}
                if not unknown:
                    raise
                waiting = [p for p in ready if any(i.item_id in unknown for i in p.interactions)]
                held += waiting
                ready = [p for p in ready if p not in waiting]
            except InvalidInput as exc:  # checked row by row in `parse`; never expected
                log.error("a batch of events was refused whole: %s", exc)
                raise
        self.stored += len(ready)
        return ready, held

    def _overdue(self) -> list[Parsed]:
        limit = self.app.settings.events.unknown_item_seconds
        now = time.monotonic()
        overdue = [p for p in self.held if now - p.first_seen >= limit]
        self.held = [p for p in self.held if p not in overdue]
        return overdue

    async def _dead_letter(self, refused: list[tuple[Message, Refused]]) -> None:
        """Publish each refused message to the dead topic, then commit it."""
        now = datetime.now(UTC).isoformat()
        letters = [
            orjson.dumps(
                {
                    "original": message.value.decode(errors="replace"),
                    "error": {"code": error.code, "message": error.message},
                    "topic": message.topic,
                    "position": message.position,
                    "at": now,
                }
            )
            for message, error in refused
        ]
        await self.bus.publish(self.dead_topic, letters)
        await self.bus.commit([message for message, _ in refused])
        self.dead += len(refused)
        for message, error in refused:
            log.warning("dead-lettered %s@%s: %s", message.topic, message.position, error.message)


def _unknown(parsed: Parsed) -> str:
    items = sorted({i.item_id for i in parsed.interactions})
    return f"names items not in the catalog after the wait: {', '.join(items[:10])}"


def _first_text(values: list[Any]) -> str | None:
    return next((v for v in values if isinstance(v, str)), None)
