"""`python -m service.events`: the events process. It consumes `<prefix>.interactions` and
`<prefix>.items` as one member of the deployment's consumer group (run several: each message
is taken by one), and relays the outbox to `<prefix>.events`. It creates the topics where
they are missing. SIGTERM or SIGINT: the batch in hand is stored and committed, then it
exits.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from prometheus_client import CollectorRegistry

from common import tracing
from common.errors import DependencyError
from common.settings import get_settings
from service.application import close_application, open_application
from service.events.consumer import Consumer
from service.events.relay import Relay
from storage.bus import Bus

log = logging.getLogger("service.events")
TOPICS = ("events", "interactions", "items", "dead")


async def main() -> None:
    settings = get_settings()
    tracing.configure("recs-events")
    app = await open_application(settings, CollectorRegistry(), serves_requests=False)
    consumer, relay = Consumer(app, app.events), Relay(app, app.events)

    def stop() -> None:
        consumer.stop()
        relay.stop()

    loop = asyncio.get_running_loop()
    for sign in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sign, stop)
    try:
        await _ensure_topics(app.events, [settings.events.topic(t) for t in TOPICS])
        log.info(
            "events: consuming %s and %s as %s; relaying the outbox to %s",
            settings.events.topic("interactions"),
            settings.events.topic("items"),
            settings.events.group,
            settings.events.topic("events"),
        )
        await asyncio.gather(consumer.run(), relay.run())
    finally:
        log.info(
            "events: stopping (%d messages stored, %d dead-lettered, %d events published)",
            consumer.stored,
            consumer.dead,
            relay.published,
        )
        await close_application(app)
        tracing.shutdown()


async def _ensure_topics(bus: Bus, topics: list[str]) -> None:
    """Create the topics, waiting for the broker where it is not up yet."""
    for attempt in range(60):
        try:
            await bus.ensure(topics)
            return
        except DependencyError as exc:
            log.warning("events: the broker is not answering (%s); trying again", exc)
            await asyncio.sleep(min(5.0, 0.5 * (attempt + 1)))
    raise SystemExit("events: the broker did not answer for minutes; giving up")


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(main())
