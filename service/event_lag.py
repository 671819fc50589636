"""`recs_events_lag` in /metrics: per incoming topic, the messages the deployment's consumers
have not stored yet, as the broker counts them. Read every LAG_SECONDS by each API process
(a scrape reads the last figure, it never waits on the broker)."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, Gauge

from common.settings import Settings
from service.background import cancel, every
from storage.bus import Bus

LAG_SECONDS = 5.0


class EventLag:
    def __init__(self, settings: Settings, bus: Bus, registry: CollectorRegistry) -> None:
        self.bus = bus
        self.topics = [settings.events.topic(t) for t in ("interactions", "items")]
        self.gauge = Gauge(
            "recs_events_lag",
            "Messages on an incoming topic that the consumers have not stored yet.",
            ["topic"],
            registry=registry,
        )
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(every(LAG_SECONDS, self.read, "read the events' lag"))]

    async def read(self) -> None:
        for topic, lag in (await self.bus.lag(self.topics)).items():
            self.gauge.labels(topic).set(lag)

    async def stop(self) -> None:
        await cancel(self._tasks)
