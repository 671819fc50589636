"""Real PostgreSQL, Redis and S3 for the whole session; each test starts from empty tables.

Tests never touch the servers a developer configured for running the service: they read
TEST_DATABASE_URL, TEST_REDIS_URL and TEST_S3_ENDPOINT, and otherwise use a `recs_test`
database, Redis database 15 and a `recs-test` bucket (TEST_S3_BUCKET) on local servers (started
if missing).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from common.settings import Settings, load_settings
from devstack.servers import Stack, bring_up
from service.api.main import create_app

ROOT = Path(__file__).resolve().parent.parent
ADMIN_KEY = "test-admin-key-0123456789"
TABLES = (
    "items, users, interactions, api_keys, builds, active_index, index_versions, item_embeddings,"
    " profile_refresh, experiments, experiment_variant_stops, experiment_exposures,"
    " experiment_served, experiment_flush, version_lists, scenarios, experiment_lists, erasures,"
    " exports, event_outbox"
)


def _point_at_test_servers() -> None:
    for name in ("DATABASE_URL", "REDIS_URL", "S3_ENDPOINT"):
        test_value = os.environ.get(f"TEST_{name}")
        if test_value:
            os.environ[name] = test_value
        else:
            os.environ.pop(name, None)
    os.environ["ADMIN_API_KEY"] = ADMIN_KEY
    os.environ["ENVIRONMENT"] = "test"
    os.environ["HF_HUB_OFFLINE"] = "1"
    # The fake encoder keeps in-process builds fast; the real model has tests of its own.
    os.environ["EMBEDDING_MODEL"] = "hashing-64"
    # Tests send many requests from one address; tests/service/test_rate_limits.py turns the
    # limits on for its own.
    os.environ["RATE_LIMIT_ENABLED"] = "false"
    # No gRPC in every test's application; tests/grpc starts its own on a free port.
    os.environ["GRPC_PORT"] = "0"


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    _point_at_test_servers()
    bucket = os.environ.get("TEST_S3_BUCKET") or "recs-test"
    up = bring_up(ROOT / ".stack" / "test", database="recs_test", redis_db=15, bucket=bucket)
    os.environ.update(up.env)
    yield up
    up.stop()


@pytest.fixture(scope="session")
def settings(stack: Stack) -> Settings:
    return load_settings()


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def db(app: FastAPI) -> AsyncIterator[asyncpg.Pool]:
    """The app's pool, on tables emptied before the test."""
    pool: asyncpg.Pool = app.state.application.pool
    # An earlier test's background work (a popular-list query, say) locks the tables in
    # another order than TRUNCATE does: let what can be awaited finish, and where a query
    # still running deadlocks with the TRUNCATE (PostgreSQL cancels the TRUNCATE), again.
    await app.state.application.drain()
    for attempt in range(5):
        try:
            await pool.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
            break
        except asyncpg.DeadlockDetectedError:
            if attempt == 4:
                raise
    await app.state.application.redis.flushdb()
    app.state.application.auth.forget()
    app.state.application.trending.forget()
    # Forget what an earlier test had this process serve.
    app.state.application.serving.current = None
    app.state.application.serving.pinned = {}
    app.state.application.experiments.forget()
    app.state.application.catalog_fields.forget()
    app.state.application.scenarios.held = {}
    await app.state.application.serving.reload_deleted()
    yield pool


@pytest.fixture
def redis(app: FastAPI) -> Redis:
    client: Redis = app.state.application.redis
    return client


@pytest.fixture
async def client(app: FastAPI, db: asyncpg.Pool) -> AsyncIterator[httpx.AsyncClient]:
    """An admin client of the app, on empty tables."""
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://recs.test", headers=headers
    ) as http:
        yield http


@pytest.fixture
async def anonymous(app: FastAPI, db: asyncpg.Pool) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://recs.test"
    ) as http:
        yield http
