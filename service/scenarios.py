"""The stored scenarios, held by every API process and read afresh within seconds of a
change: at once on the change's announcement, and by a poll should one be lost."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import asyncpg

from common.errors import UnknownScenario
from common.models import Scenario
from indexing.filters import Filter, Filters
from service.background import cancel, every
from storage import scenarios as stored

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Boost:
    filter: Filter
    weight: float


@dataclass(frozen=True)
class Placement:
    """A scenario, its filters parsed: what a list asked for with `scenario=` keeps to."""

    scenario_id: str
    stamp: float  # when it was last written: names this form of it in caches
    filter: Filter | None
    boosters: tuple[Boost, ...]
    strategy: str
    exclude_seen: bool | None
    ranking: dict[str, Any]  # diversity settings over the served version's

    @classmethod
    def of(cls, scenario: Scenario, filters: Filters) -> Placement:
        diversity = scenario.diversity
        ranking = diversity.model_dump(exclude_none=True) if diversity is not None else {}
        boosters = []
        for booster in scenario.boosters:
            found = filters.compiled(booster.filter)
            if found is not None:  # an empty filter boosts nothing
                boosters.append(Boost(found, booster.weight))
        return cls(
            scenario_id=scenario.scenario_id,
            stamp=scenario.updated_at.timestamp(),
            filter=filters.compiled(scenario.filter) if scenario.filter else None,
            boosters=tuple(boosters),
            strategy=scenario.strategy,
            exclude_seen=scenario.exclude_seen,
            ranking=ranking,
        )


class Scenarios:
    def __init__(self, pool: asyncpg.Pool, filters: Filters) -> None:
        self.pool = pool
        self.filters = filters
        self.held: dict[str, Placement] = {}
        self._poll: asyncio.Task[None] | None = None
        # One read at a time: a slower read of older rows never replaces a newer one.
        self._reading = asyncio.Lock()

    async def start(self, poll_seconds: float) -> None:
        try:
            await self.reload()
        except Exception:
            log.warning("could not read the scenarios; the poll tries again", exc_info=True)
        self._poll = asyncio.create_task(
            every(poll_seconds, self.reload, "read the scenarios"), name="scenarios"
        )

    async def stop(self) -> None:
        if self._poll is not None:
            await cancel([self._poll])

    async def reload(self) -> None:
        async with self._reading:
            await self._reload()

    async def _reload(self) -> None:
        found = await stored.list_scenarios(self.pool)
        held = {}
        for scenario in found:
            try:
                held[scenario.scenario_id] = Placement.of(scenario, self.filters)
            except Exception:  # stored by a release whose grammar differed: left out
                log.warning("scenario %r cannot be applied", scenario.scenario_id, exc_info=True)
        self.held = held

    def find(self, scenario_id: str) -> Placement:
        found = self.held.get(scenario_id)
        if found is None:
            raise UnknownScenario(f"scenario {scenario_id!r} does not exist")
        return found
