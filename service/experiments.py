"""The experiments each API process holds, and the impressions it records for them.

Every process keeps all experiments in memory, re-read when one is created or stopped (an
`experiments_changed` announcement) and every EXPERIMENT_REFRESH_SECONDS in case one is
missed: a request looks its experiment up without a query. Impressions wait in a bounded
buffer and go to the Redis stream in one round trip every half second; with Redis down they
wait there (and the oldest are dropped, counted, once it is full), and answers go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.asyncio import Redis

from common.errors import CacheUnavailable, DependencyError, InvalidInput
from common.models import Experiment
from common.settings import Settings
from experiments.design import Design
from service.background import cancel
from service.serving import Serving
from storage import experiments as stored

log = logging.getLogger(__name__)
PUSH_SECONDS = 0.5
# Answers' impressions held while Redis is away; beyond them the oldest are dropped.
BUFFER_ANSWERS = 50_000
# Experiments whose figures /metrics shows: the newest ones.
METRICS_EXPERIMENTS = 50
# Stopped experiments held (so that their id answers "stopped"), the newest first; older
# ones answer as unknown, which gets the same default answer.
STOPPED_HELD = 200

State = Literal["running", "stopped", "unknown"]


@dataclass(frozen=True)
class Loaded:
    """An experiment as this process holds it, with its latest stored results."""

    experiment: Experiment
    design: Design | None  # running experiments only: a stopped one assigns no one
    results: dict[str, Any] | None


class Experiments:
    def __init__(
        self,
        settings: Settings,
        pool: asyncpg.Pool,
        redis: Redis,
        serving: Serving,
        registry: CollectorRegistry,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.redis = redis
        self.serving = serving
        self.loaded: dict[str, Loaded] = {}
        self._buffer: deque[stored.Impression] = deque(maxlen=BUFFER_ANSWERS)
        self._tasks: list[asyncio.Task[None]] = []
        self._loading: set[asyncio.Task[None]] = set()
        self._pushing = asyncio.Lock()
        self._recorded = Counter(
            "recs_experiment_impressions_recorded_total",
            "Items this process showed under an experiment, by experiment and variant.",
            ["experiment", "variant"],
            registry=registry,
        )
        self._dropped = Counter(
            "recs_experiment_impressions_dropped_total",
            "Answers' impressions dropped because Redis was away too long to hold them.",
            registry=registry,
        )
        registry.register(_Figures(self))

    async def start(self) -> None:
        try:
            await self.reload()
        except DependencyError:
            log.warning("could not read the experiments at start; the refresh will try again")
        self._tasks = [
            asyncio.create_task(self._refresh(), name="experiments-refresh"),
            asyncio.create_task(self._push_loop(), name="experiments-push"),
        ]

    async def stop(self) -> None:
        await cancel(self._tasks)
        with contextlib.suppress(CacheUnavailable):
            await self.push()

    def forget(self) -> None:
        self.loaded = {}
        self._buffer.clear()

    async def reload(self) -> None:
        held = {}
        for experiment, salt, results in await stored.to_serve(self.pool, STOPPED_HELD):
            design = None
            if experiment.active:
                try:
                    design = Design.of(experiment, salt)
                except InvalidInput as exc:
                    # Stored before a check existed, say: that experiment answers as unknown.
                    log.error("experiment %r cannot be served: %s", experiment.experiment_id, exc)
                    continue
            held[experiment.experiment_id] = Loaded(experiment, design, results)
        self.loaded = held
        pinned = {v for h in held.values() if h.design for v in h.design.pinned}
        self.serving.keep_pinned(pinned)
        for version in pinned - self.serving.held_versions:
            # Loaded ahead of the first request that needs it.
            task = asyncio.create_task(self._preload(version))
            self._loading.add(task)
            task.add_done_callback(self._loading.discard)

    async def _preload(self, version: int) -> None:
        try:
            await self.serving.version(version)
        except Exception:
            log.warning("could not load pinned index version %d", version, exc_info=True)

    async def changed(self) -> None:
        """After a write here: re-read now, and tell the other processes."""
        await self.reload()
        await self.serving.announce("experiments_changed")

    def remember(self, experiment_id: str, results: dict[str, Any]) -> None:
        """Results computed here, for /metrics before the next re-read."""
        held = self.loaded.get(experiment_id)
        if held is not None:
            self.loaded[experiment_id] = Loaded(held.experiment, held.design, results)

    def find(self, experiment_id: str) -> tuple[State, Design | None]:
        held = self.loaded.get(experiment_id)
        if held is None:
            return "unknown", None
        if held.design is None:
            return "stopped", None
        return "running", held.design

    def record(
        self,
        experiment_id: str,
        variant: str,
        user_id: str,
        items: Sequence[str],
        version: int,
        recommendation_id: str,
    ) -> None:
        """Impressions of one answer, named by its recommendation_id, sent to the stream
        with the next push."""
        if not items:
            return
        if len(self._buffer) == self._buffer.maxlen:
            self._dropped.inc()
        self._buffer.append(
            (experiment_id, variant, user_id, list(items), version, time.time(), recommendation_id)
        )
        self._recorded.labels(experiment_id, variant).inc(len(items))

    async def push(self) -> None:
        """Send the buffered impressions; on failure they go back for the next push, ahead
        of those recorded meanwhile (the oldest dropped if that overfills the buffer)."""
        async with self._pushing:
            if not self._buffer:
                return
            batch, self._buffer = self._buffer, deque(maxlen=BUFFER_ANSWERS)
            try:
                await stored.append_impressions(
                    self.redis, list(batch), self.settings.experiment.stream_max
                )
            except BaseException:
                overflow = len(batch) + len(self._buffer) - BUFFER_ANSWERS
                if overflow > 0:
                    self._dropped.inc(overflow)
                batch.extend(self._buffer)
                self._buffer = deque(batch, maxlen=BUFFER_ANSWERS)
                raise

    async def _push_loop(self) -> None:
        while True:
            await asyncio.sleep(PUSH_SECONDS)
            try:
                await self.push()
            except CacheUnavailable as exc:
                log.warning("impressions wait in memory (%d answers): %s", len(self._buffer), exc)

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(self.settings.experiment.refresh_seconds)
            try:
                await self.reload()
            except DependencyError as exc:
                log.warning("could not re-read the experiments; keeping those held: %s", exc)
            except Exception:
                log.exception("could not re-read the experiments; keeping those held")


class _Figures(Collector):
    """Per-variant users, impressions and conversions of the newest experiments, as their
    latest results (the worker's tick, or a results request) counted them."""

    def __init__(self, experiments: Experiments) -> None:
        self.experiments = experiments

    def collect(self) -> Iterator[Metric]:
        labels = ["experiment", "variant"]
        impressions = CounterMetricFamily(
            "recs_experiment_impressions", "Items shown under the variant.", labels=labels
        )
        conversions = CounterMetricFamily(
            "recs_experiment_conversions",
            "Shown items converted on within the attribution window.",
            labels=labels,
        )
        users = GaugeMetricFamily(
            "recs_experiment_users", "Users shown the variant.", labels=labels
        )
        held = list(self.experiments.loaded.values())[:METRICS_EXPERIMENTS]
        for entry in held:
            for row in (entry.results or {}).get("variants", []):
                names = [entry.experiment.experiment_id, row["name"]]
                impressions.add_metric(names, row["impressions"])
                conversions.add_metric(names, row["clicks"])
                users.add_metric(names, row["users"])
        yield from (impressions, conversions, users)
