"""PostgreSQL: the connection pool, forward-only migrations, and driver-error translation."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Iterator, Sequence
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


# A table whose rows changed by more than this share since its statistics were gathered is
# analysed before a build reads it (autovacuum's own default rule, with its 50-row floor).
STALE_SHARE = 0.1


async def refresh_statistics(conn: Connection, tables: Sequence[str]) -> list[str]:
    """ANALYZE those of `tables` (in the current schema) whose statistics are stale, and
    return their names.

    Where autovacuum is off or behind, a bulk load leaves the planner with the row counts
    of an empty table: after 10M interactions landed unanalysed, the snapshot's user list
    was planned as 10M index look-ups and took 46 s instead of 5. ANALYZE samples a fixed
    number of rows, so it costs well under a second at any size, and it blocks neither
    reads nor writes. Without the right to analyse a table, PostgreSQL warns and skips it.
    """
    stale = [
        r["relname"]
        for r in await conn.fetch(
            """SELECT relname FROM pg_stat_user_tables
               WHERE schemaname = current_schema() AND relname = ANY($1::text[])
                 AND n_mod_since_analyze > 50 + $2 * n_live_tup
               ORDER BY relname""",
            list(tables),
            STALE_SHARE,
        )
    ]
    for table in stale:
        await conn.execute(f"ANALYZE {_quoted(table)}")
    return stale


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


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
