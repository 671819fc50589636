from __future__ import annotations

import time

import asyncpg
import pytest

from common.errors import DatabaseUnavailable
from common.settings import DatabaseSettings, Settings
from storage.db import create_pool, database_errors, migrate, migrations, refresh_statistics


def test_migrations_are_numbered_without_gaps() -> None:
    found = migrations()
    assert [m.version for m in found] == list(range(1, len(found) + 1))


async def test_start_up_recorded_every_migration(db: asyncpg.Pool) -> None:
    recorded = await db.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
    assert [(r["version"], r["name"]) for r in recorded] == [
        (m.version, m.name) for m in migrations()
    ]


async def test_migrating_again_applies_nothing(db: asyncpg.Pool) -> None:
    async with db.acquire() as conn:
        assert await migrate(conn) == []


async def test_a_fresh_database_is_migrated_from_scratch(settings: Settings) -> None:
    admin = await asyncpg.connect(settings.database.url)
    await admin.execute("DROP DATABASE IF EXISTS recs_migrate_test")
    await admin.execute("CREATE DATABASE recs_migrate_test")
    url = settings.database.url.rsplit("/", 1)[0] + "/recs_migrate_test"
    try:
        pool = await create_pool(DatabaseSettings(url=url, pool_min=1, pool_max=2))
        try:
            count = await pool.fetchval("SELECT count(*) FROM schema_migrations")
            assert count == len(migrations())
            tables = {
                r["tablename"]
                for r in await pool.fetch(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                )
            }
            assert {"items", "users", "interactions", "index_versions", "builds"} <= tables
        finally:
            await pool.close()
    finally:
        await admin.execute("DROP DATABASE IF EXISTS recs_migrate_test")
        await admin.close()


async def test_a_database_newer_than_the_code_is_refused(db: asyncpg.Pool) -> None:
    async with db.acquire() as conn:
        await conn.execute("INSERT INTO schema_migrations (version, name) VALUES (9999, 'future')")
        try:
            with pytest.raises(RuntimeError, match="newer release"):
                await migrate(conn)
        finally:
            await conn.execute("DELETE FROM schema_migrations WHERE version = 9999")


async def test_an_unreachable_database_fails_clearly_after_bounded_retries() -> None:
    dead = DatabaseSettings(url="postgresql://postgres@127.0.0.1:1/none")
    with pytest.raises(DatabaseUnavailable, match="DATABASE_URL"):
        await create_pool(dead, attempts=2)


async def test_a_statement_the_server_does_not_answer_in_time_is_database_unavailable(
    settings: Settings,
) -> None:
    quick = settings.database.model_copy(
        update={"pool_min": 1, "pool_max": 1, "command_timeout": 1}
    )
    pool = await create_pool(quick)
    try:
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailable, match="did not answer in time"), database_errors():
            await pool.fetchval("SELECT pg_sleep(30)")
        assert time.monotonic() - started < 3
        assert await pool.fetchval("SELECT 1") == 1  # the pool carries on
    finally:
        await pool.close()


async def test_a_table_changed_since_its_statistics_is_analysed_once(db: asyncpg.Pool) -> None:
    async with db.acquire() as conn:
        await conn.execute("DROP TABLE IF EXISTS statistics_probe")
        await conn.execute("CREATE TABLE statistics_probe (n integer)")
        try:
            await conn.execute("INSERT INTO statistics_probe SELECT generate_series(1, 1000)")
            await conn.execute("SELECT pg_stat_force_next_flush()")
            # The counts reach the shared statistics once this backend flushes them.
            deadline = time.monotonic() + 30
            while True:
                await conn.execute("SELECT pg_stat_clear_snapshot()")
                changed = await conn.fetchval(
                    """SELECT n_mod_since_analyze FROM pg_stat_user_tables
                       WHERE relname = 'statistics_probe' AND schemaname = current_schema()"""
                )
                if changed == 1000 or time.monotonic() > deadline:
                    break
            assert changed == 1000

            assert await refresh_statistics(conn, ["statistics_probe", "no_such_table"]) == [
                "statistics_probe"
            ]
            planned = await conn.fetchval(
                "SELECT reltuples FROM pg_class WHERE relname = 'statistics_probe'"
            )
            assert planned == 1000  # the planner now knows the table's size
            await conn.execute("SELECT pg_stat_clear_snapshot()")
            assert await refresh_statistics(conn, ["statistics_probe"]) == []
        finally:
            await conn.execute("DROP TABLE statistics_probe")
