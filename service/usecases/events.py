"""Dead letters: the messages the consumers could not accept, listed and replayed once fixed
(a missing item now in the catalog, a producer's bug mended)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import orjson

from common.models import DeadLetter, DeadLetters, Replayed
from service.application import Application


async def dead_letters(app: Application, limit: int) -> DeadLetters:
    """The oldest `limit` dead letters (those not replayed yet)."""
    found = await app.events.read(app.settings.events.topic("dead"), limit)
    return DeadLetters(letters=[_letter(m.position, m.value) for m in found])


async def replay_dead(app: Application, limit: int) -> Replayed:
    """Publish the originals of the oldest `limit` dead letters to the topics they came from,
    then drop those letters; counts by topic. A letter that names no topic of ours, or is not
    a letter at all, is dropped and counted as unreadable."""
    events = app.settings.events
    incoming = {events.topic("interactions"), events.topic("items")}
    found = await app.events.read(events.topic("dead"), limit)
    by_topic: dict[str, list[bytes]] = defaultdict(list)
    unreadable = 0
    for message in found:
        letter = _letter(message.position, message.value)
        if letter.topic in incoming and letter.original is not None:
            by_topic[letter.topic].append(letter.original.encode())
        else:
            unreadable += 1
    for topic, originals in by_topic.items():
        await app.events.publish(topic, originals)
    await app.events.remove(found)
    return Replayed(
        replayed=sum(len(v) for v in by_topic.values()),
        by_topic={t: len(v) for t, v in by_topic.items()},
        unreadable=unreadable,
    )


def _letter(position: str, value: bytes) -> DeadLetter:
    try:
        body: Any = orjson.loads(value)
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        return DeadLetter(position=position, original=None, error=None, topic=None, at=None)
    original = body.get("original")
    return DeadLetter(
        position=position,
        original=original if isinstance(original, str) else None,
        error=body.get("error") if isinstance(body.get("error"), dict) else None,
        topic=body.get("topic") if isinstance(body.get("topic"), str) else None,
        at=body.get("at") if isinstance(body.get("at"), str) else None,
    )
