"""Kafka commits per partition: up to the first message still open, never back over an
earlier commit (no broker needed: the consumer's commit is recorded)."""

from __future__ import annotations

from typing import Any

from common.settings import EventSettings
from storage.bus import Message
from storage.bus.kafka import KafkaBus


class Recorded:
    def __init__(self) -> None:
        self.commits: list[int] = []

    def commit(self, offsets: list[Any], asynchronous: bool) -> None:
        self.commits += [o.offset for o in offsets]


def taken(bus: KafkaBus, *offsets: int) -> list[Message]:
    found = []
    for offset in offsets:
        bus._open[("t", 0)].add(offset)
        bus._taken[("t", 0)] = max(bus._taken.get(("t", 0), -1), offset)
        found.append(Message("t", f"0:{offset}", b"", partition=0, offset=offset))
    return found


async def test_a_held_message_keeps_the_commit_below_it_and_it_never_moves_back() -> None:
    bus = KafkaBus(EventSettings(url="kafka://127.0.0.1:9"), "c")
    recorded = Recorded()
    bus._consumer = recorded  # type: ignore[assignment]
    five, six, seven = taken(bus, 5, 6, 7)
    await bus.commit([six, seven])  # 5 is held (its item is on its way)
    assert recorded.commits == [5]
    await bus.commit([five])
    assert recorded.commits == [5, 8]  # past 7, not back to 6
