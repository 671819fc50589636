"""The outbox's relay: events written with the changes they announce (storage/outbox.py),
published to `<prefix>.events` once committed, oldest first.

Woken by the database at each commit that wrote an event, and every EVENTS_OUTBOX_SECONDS
in case a wake-up was missed. A broker that is down leaves the events in the outbox: they go
out, in order, once it is back. Publishing never fails the change it announces.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson

from common.errors import DependencyError
from service.application import Application
from storage import outbox
from storage.bus import Bus

log = logging.getLogger(__name__)
BATCH = 500
PAUSE_MAX_SECONDS = 10.0


class Relay:
    def __init__(self, app: Application, bus: Bus) -> None:
        self.app, self.bus = app, bus
        self.topic = app.settings.events.topic("events")
        self.published = 0
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        pause = 0.0
        while not self._stopping.is_set():
            try:
                async with outbox.listening(self.app.pool, self._wake.set):
                    while not self._stopping.is_set():
                        self._wake.clear()
                        await self.publish_pending()
                        pause = 0.0
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(
                                self._wake.wait(), self.app.settings.events.outbox_seconds
                            )
            except DependencyError as exc:
                pause = min(PAUSE_MAX_SECONDS, max(0.5, pause * 2))
                log.warning("events wait in the outbox %.1f s: %s", pause, exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), pause)

    async def publish_pending(self) -> int:
        """Publish every event in the outbox; how many."""
        total = 0
        while True:
            async with outbox.taking(self.app.pool, BATCH) as pending:
                if not pending:
                    return total
                values = [orjson.dumps(self.event(p)) for p in pending]
                await self.bus.publish(self.topic, values, [p.traceparent for p in pending])
            total += len(pending)
            self.published += len(pending)

    def event(self, pending: outbox.Pending) -> dict[str, Any]:
        """The event as the contract gives it: {id, type, at, deployment, ...}."""
        body: dict[str, Any] = {
            "id": pending.event_id,
            "type": pending.type,
            "at": pending.at.isoformat(),
            "deployment": self.app.settings.deployment,
            **pending.fields,
        }
        if pending.traceparent:
            body["traceparent"] = pending.traceparent
        return body
