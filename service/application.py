"""The application: what every use case is handed, opened once per API process.

It holds the process's connections (PostgreSQL, Redis, the blob store, the broker), the
objects that keep serving state (the served version, the trending lists, experiments, the
profile refresher) and the threads that rank and encode off the event loop. Nothing in it
knows of HTTP: the routes, the lookups and any other door reach the use cases
(service/usecases/) through it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import asyncpg
import faiss
from celery import Celery
from prometheus_client import CollectorRegistry, Counter
from redis.asyncio import Redis
from threadpoolctl import threadpool_limits

from common.errors import CacheUnavailable, ConfigError, ObjectStoreUnavailable
from common.retry import wait_for
from common.settings import Settings
from embeddings.encoder import Encoder, Vectors, configured, embed_items
from indexing.filters import Filters
from service.auth import Authenticator
from service.catalog_fields import CatalogFields
from service.event_lag import EventLag
from service.experiments import Experiments
from service.ratelimit import RateLimiter
from service.refresher import Refresher
from service.scenarios import Scenarios
from service.serving import Serving
from service.trending import Trending
from storage import cache
from storage.blob import BlobStore, open_store
from storage.blob.s3 import StoreProbe
from storage.bus import Bus, open_bus
from storage.db import create_pool
from workers.factory import make_celery

log = logging.getLogger(__name__)
T = TypeVar("T")


def one_thread_each() -> None:
    """A ranking thread runs FAISS with no OpenMP team of its own (the setting is per
    thread): one query's search is too small to split."""
    faiss.omp_set_num_threads(1)


@dataclass
class Application:
    """Everything the API process opens at start and closes after."""

    settings: Settings
    pool: asyncpg.Pool
    redis: Redis
    store: BlobStore
    auth: Authenticator
    serving: Serving
    celery: Celery
    refresher: Refresher
    store_probe: StoreProbe
    limiter: RateLimiter
    trending: Trending
    experiments: Experiments
    catalog_fields: CatalogFields
    scenarios: Scenarios
    # Filters parsed once, by their text.
    filters: Filters
    # Which source answered each personal list (service/usecases/list_sources.py), and
    # whether the list was kept to a category or filter.
    list_sources: Counter
    # The event transport (storage/bus): dead letters are replayed through it, and its lag
    # is in /metrics.
    events: Bus
    event_lag: EventLag
    _encoder: Encoder | None = None
    _background: set[asyncio.Task[None]] = field(default_factory=set)
    # The model runs on one thread of its own: queries wait their turn instead of each
    # executor thread growing its own allocator arena around the model.
    _encoding: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="query-encoder")
    )
    _ranking: ThreadPoolExecutor | None = None
    # One BLAS thread for the process: a ranking's products are small, and OpenBLAS's own
    # threads cost more than they saved there, fighting the other ranking thread for the
    # cores (a live ranking on bench/serving.py's 100k version: 7.4 ms, against 3.4 ms).
    _blas: threadpool_limits = field(default_factory=lambda: threadpool_limits(1, "blas"))

    @property
    def encoder(self) -> Encoder:
        """The query encoder, created on first use: most processes never need it."""
        if self._encoder is None:
            self._encoder = configured(self.settings.embedding)
        return self._encoder

    async def encode(self, texts: list[str]) -> Vectors:
        """Query texts as vectors, off the event loop, on the encoder's thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._encoding, lambda: self.encoder.encode(texts))

    async def embed_item(self, text: str, labels: str) -> Vectors:
        """One item's vector as the workers make it (`embed_items`), on the encoder's thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._encoding, lambda: embed_items(self.encoder, [text], [labels])
        )

    async def rank(self, work: Callable[[], T]) -> T:
        """`work` (a ranking or a search) on a ranking thread, off the event loop."""
        if self._ranking is None:
            self._ranking = ThreadPoolExecutor(
                self.settings.api.ranking_threads,
                thread_name_prefix="ranking",
                initializer=one_thread_each,
            )
        return await asyncio.get_running_loop().run_in_executor(self._ranking, work)

    def close(self) -> None:
        self._blas.restore_original_limits()
        self._encoding.shutdown(wait=False, cancel_futures=True)
        if self._ranking is not None:
            self._ranking.shutdown(wait=False, cancel_futures=True)

    def in_background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` after the answer is sent; shutdown waits for it."""
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drain(self) -> None:
        """Wait for background work: scheduled tasks, profile refreshes and the lists they
        rank ahead."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        await self.refresher.flush()
        await self.refresher.ranked()


async def open_application(
    settings: Settings, registry: CollectorRegistry, *, serves_requests: bool = True
) -> Application:
    """Connect to PostgreSQL (migrating it), Redis and S3, waiting a bounded time for each.
    A worker opens one too, to run use cases (`serves_requests` False: no admin key needed)."""
    if serves_requests and settings.api.admin_api_key is None:
        raise ConfigError("ADMIN_API_KEY: not set; the service needs a first admin key")
    pool = await create_pool(settings.database)
    redis: Redis = Redis.from_url(
        settings.redis.url,
        socket_timeout=settings.redis.timeout_seconds,
        socket_connect_timeout=settings.redis.timeout_seconds,
    )
    try:
        await wait_for("Redis at REDIS_URL", lambda: cache.ping(redis), failure=CacheUnavailable)
        store = open_store(settings)
        try:
            await wait_for(
                f"the object store at {settings.blob_url}",
                lambda: asyncio.to_thread(store.ensure),
                failure=ObjectStoreUnavailable,
                attempts=3,
            )
        except ObjectStoreUnavailable as exc:
            # Serving needs S3 only to fetch versions: start from the verified local copy of
            # the active one (or from popularity), and let readiness say what is missing.
            log.warning("starting without S3: %s", exc)
        serving = Serving(settings, pool, redis, store)
        await serving.start()
        held = Trending(settings, pool, redis)
        await held.start()
        refresher = Refresher(pool, redis, settings, serving, held)
        if serves_requests:
            # The API processes refresh the profiles of the users any process queued: a
            # worker or the events process announces its writes (`profiles_queued`).
            refresher.start()
            serving.handlers["profiles_queued"] = lambda _: _woken(refresher)
        serving.handlers["trending_changed"] = lambda event: held.reload(event.get("generation"))
        trials = Experiments(settings, pool, redis, serving, registry)
        await trials.start()
        serving.handlers["experiments_changed"] = lambda _: trials.reload()
        fields = CatalogFields(pool)
        await fields.start(settings.index.poll_seconds)
        filters = Filters()
        placements = Scenarios(pool, filters)
        await placements.start(settings.index.poll_seconds)
        serving.handlers["scenarios_changed"] = lambda _: placements.reload()
        bus = open_bus(settings.events, settings.redis.url, f"{socket.gethostname()}-{os.getpid()}")
        lag = EventLag(settings, bus, registry)
        if serves_requests:
            lag.start()
    except BaseException:
        await redis.aclose()
        await pool.close()
        raise
    return Application(
        settings=settings,
        pool=pool,
        redis=redis,
        store=store,
        auth=Authenticator(settings.api, pool),
        serving=serving,
        celery=make_celery(settings),
        refresher=refresher,
        store_probe=StoreProbe(store),
        limiter=RateLimiter(settings.rate, redis, settings.event_namespace, registry),
        trending=held,
        experiments=trials,
        catalog_fields=fields,
        scenarios=placements,
        filters=filters,
        list_sources=Counter(
            "recs_list_sources_total",
            "Personal lists by the source that answered them, and whether a category or a "
            "filter narrowed them.",
            ["source", "narrowed"],
            registry=registry,
        ),
        events=bus,
        event_lag=lag,
    )


async def _woken(refresher: Refresher) -> None:
    refresher.mark()


async def close_application(res: Application) -> None:
    """Finish background work, then close everything `open_application` opened."""
    await res.drain()
    await res.refresher.stop()
    await res.trending.stop()
    await res.experiments.stop()
    await res.catalog_fields.stop()
    await res.scenarios.stop()
    await res.event_lag.stop()
    await res.events.close()
    await res.serving.stop()
    await res.redis.aclose()
    await res.pool.close()
    res.store_probe.close()
    res.close()
