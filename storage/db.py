"""PostgreSQL: the connection pool, forward-only migrations, and driver-error translation."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Any

import asyncpg
import numpy as np
import numpy.typing as npt
import orjson
from asyncpg.pool import PoolConnectionProxy

from common.errors import DatabaseUnavailable
from common.retry import wait_for
from common.settings import DatabaseSettings

log = logging.getLogger(__name__)

_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# Any constant works; it only has to be the same for every process that migrates.
_MIGRATION_LOCK = 0x7265_6373

# What `pool.acquire()` hands out; it behaves as a connection.
Connection = asyncpg.Connection | PoolConnectionProxy


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """The migrations shipped in storage/migrations, in order."""
    found = []
    for entry in resources.files("storage.migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migrations must be numbered 1..n without gaps, found {versions}")
    return found


async def migrate(conn: Connection) -> list[int]:
    """Apply every migration not yet recorded; each in its own transaction. Returns those applied.

    An advisory lock serialises processes that start together (API replicas, workers).
    """
    applied: list[int] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version    integer PRIMARY KEY,
                   name       text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        known = migrations()
        unknown = done - {m.version for m in known}
        if unknown:
            raise RuntimeError(
                f"the database has migrations {sorted(unknown)} this code does not know: "
                "it was migrated by a newer release"
            )
        for migration in known:
            if migration.version in done:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
            log.info("applied migration %04d_%s", migration.version, migration.name)
            applied.append(migration.version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
    return applied


# A new connection that takes longer than this (or the command timeout, if shorter) fails.
CONNECT_SECONDS = 10.0


async def _init_connection(conn: Connection) -> None:
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(
            kind,
            encoder=lambda v: orjson.dumps(v).decode(),
            decoder=orjson.loads,
            schema="pg_catalog",
        )


async def create_pool(settings: DatabaseSettings, *, attempts: int = 10) -> asyncpg.Pool:
    """A pool on the configured database, waiting while the server starts; then migrate."""

    async def connect() -> asyncpg.Pool:
        return await asyncpg.create_pool(
            settings.url,
            min_size=settings.pool_min,
            max_size=settings.pool_max,
            init=_init_connection,
            command_timeout=settings.command_timeout,
            timeout=min(settings.command_timeout, CONNECT_SECONDS),
        )

    pool = await wait_for(
        "PostgreSQL at DATABASE_URL", connect, failure=DatabaseUnavailable, attempts=attempts
    )
    async with pool.acquire() as conn:
        await migrate(conn)
    return pool


@contextmanager
def database_errors() -> Iterator[None]:
    """Translate a lost or refused connection into DatabaseUnavailable."""
    try:
        yield
    except TimeoutError as exc:  # before OSError, of which it is one
        raise DatabaseUnavailable("the database did not answer in time") from exc
    except (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError) as exc:
        raise DatabaseUnavailable(f"the database is unavailable: {exc}") from exc


@asynccontextmanager
async def transaction(pool: asyncpg.Pool) -> AsyncIterator[Connection]:
    with database_errors():
        async with pool.acquire() as conn, conn.transaction():
            yield conn


async def ping(pool: asyncpg.Pool) -> None:
    """Raise DatabaseUnavailable unless PostgreSQL answers."""
    with database_errors():
        await pool.fetchval("SELECT 1")


# COPY's binary format: an 11-byte signature, flags and a header extension length (none)
# before the rows, and a 2-byte end marker after them.
_COPY_HEADER = 19
_COPY_TRAILER = 2


def copy_row(*fields: tuple[str, str]) -> np.dtype[Any]:
    """One row of a binary COPY of these fixed-width, never NULL fields, each (name, numpy
    type code, big-endian): a field count, then each field's length and value."""
    layout = [("fields", ">i2")]
    for name, code in fields:
        layout += [(f"{name}_size", ">i4"), (name, code)]
    return np.dtype(layout)


async def copy_numbers(
    conn: Connection, query: str, row: np.dtype[Any], *args: Any
) -> npt.NDArray[np.void]:
    """A query's rows as one binary COPY, read into a structured array of `row` (copy_row)."""
    parts: list[bytes] = []

    async def keep(part: bytes) -> None:
        parts.append(part)

    await conn.copy_from_query(query, *args, output=keep, format="binary")
    data = b"".join(parts)
    parts.clear()
    body = len(data) - _COPY_HEADER - _COPY_TRAILER
    if body < 0 or body % row.itemsize:
        raise ValueError(f"unexpected COPY output: {len(data)} bytes for rows of {row.itemsize}")
    return np.frombuffer(data, dtype=row, offset=_COPY_HEADER, count=body // row.itemsize)
