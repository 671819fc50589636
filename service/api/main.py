"""Assembles the app: lifespan resources, middleware, error handling, routes."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from common.errors import CacheUnavailable, ConfigError, ObjectStoreUnavailable
from common.retry import wait_for
from common.settings import Settings, get_settings
from service.api import errors
from service.api.body import document_bodies
from service.api.deps import document_security
from service.api.limits import AuthenticateFirst, BodyLimit
from service.api.lookups import Lookups
from service.api.metrics import RequestMetrics, access_log
from service.api.routes import (
    API,
    experiments,
    health,
    index,
    items,
    keys,
    recommendations,
    users,
)
from service.application import Application
from service.auth import Authenticator
from service.experiments import Experiments
from service.ratelimit import RateLimiter
from service.refresher import Refresher
from service.serving import Serving
from service.trending import Trending
from storage import cache
from storage.blob import open_store
from storage.blob.s3 import StoreProbe
from storage.db import create_pool
from workers.factory import make_celery

log = logging.getLogger(__name__)


async def open_application(settings: Settings, registry: CollectorRegistry) -> Application:
    """Connect to PostgreSQL (migrating it), Redis and S3, waiting a bounded time for each."""
    if settings.api.admin_api_key is None:
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
        refresher.start()
        serving.handlers["trending_changed"] = lambda event: held.reload(event.get("generation"))
        trials = Experiments(settings, pool, redis, serving, registry)
        await trials.start()
        serving.handlers["experiments_changed"] = lambda _: trials.reload()
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
        profiles=refresher,
        store_probe=StoreProbe(store),
        limiter=RateLimiter(settings.rate, redis, settings.event_namespace, registry),
        trending=held,
        experiments=trials,
    )


async def close_application(res: Application) -> None:
    await res.drain()
    await res.profiles.stop()
    await res.trending.stop()
    await res.experiments.stop()
    await res.serving.stop()
    await res.redis.aclose()
    await res.pool.close()
    res.store_probe.close()
    res.close()


def _access_log(enabled: bool) -> None:
    """The access lines go to stderr as they are: each is already one JSON object."""
    access_log.setLevel(logging.INFO if enabled else logging.WARNING)
    if enabled and not access_log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        access_log.addHandler(handler)
        access_log.propagate = False


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.application = await open_application(settings, app.state.registry)
        try:
            yield
        finally:
            await close_application(app.state.application)

    app = FastAPI(
        title="recs",
        version="0.1.0",
        summary="Similar items, personalised recommendations and trending lists "
        "from versioned vector indexes.",
        lifespan=lifespan,
    )
    app.state.registry = CollectorRegistry()
    _access_log(settings.api.access_log)
    errors.install(app)
    # The last added runs first: metrics, then the size limit, then the token, then the
    # lookups that need no routing.
    app.add_middleware(Lookups)
    app.add_middleware(AuthenticateFirst, prefix=API + "/")
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.api.body_limit_bytes,
        batch_bytes=settings.api.max_body_bytes,
    )
    app.add_middleware(RequestMetrics, registry=app.state.registry)
    for module in (health, recommendations, items, users, keys, index, experiments):
        app.include_router(module.router)
    document_bodies(app, {("InteractionIn", "type"): sorted(settings.interactions.types)})
    document_security(app, API + "/")
    return app
