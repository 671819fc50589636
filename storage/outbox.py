"""The event outbox: events written with the change they announce, published once committed.

`emit` runs inside the transaction of the change; the relay (service/events/relay.py) takes
the oldest events with `taking`, publishes them, and deletes them in the same transaction,
so each is published at least once, in order, whatever fails. Several relays can run: a row
one of them holds is skipped by the others.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from common import tracing
from storage.db import Connection, database_errors, transaction

CHANNEL = "recs_event_outbox"


@dataclass(frozen=True)
class Pending:
    """An event waiting to be published."""

    id: int
    event_id: str
    type: str
    fields: dict[str, Any]
    traceparent: str | None
    at: datetime


async def emit(conn: Connection, kind: str, **fields: Any) -> None:
    """Write an event within the caller's transaction: it exists only if that commits."""
    await conn.execute(
        "INSERT INTO event_outbox (type, fields, traceparent) VALUES ($1, $2, $3)",
        kind,
        {k: v for k, v in fields.items() if v is not None},
        tracing.traceparent(),
    )


@asynccontextmanager
async def taking(pool: asyncpg.Pool, limit: int) -> AsyncIterator[list[Pending]]:
    """The oldest `limit` events no other relay holds, held until the block ends; they are
    deleted if it ends normally (published), kept if it raises."""
    async with transaction(pool) as conn:
        rows = await conn.fetch(
            """SELECT id, event_id::text, type, fields, traceparent, at FROM event_outbox
               ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED""",
            limit,
        )
        found = [Pending(**dict(r)) for r in rows]
        yield found
        if found:
            await conn.execute(
                "DELETE FROM event_outbox WHERE id = ANY($1::bigint[])", [p.id for p in found]
            )


@asynccontextmanager
async def listening(pool: asyncpg.Pool, wake: Callable[[], None]) -> AsyncIterator[None]:
    """Call `wake` whenever a transaction that wrote events commits, while the block runs
    (on one connection of the pool, held meanwhile)."""

    def heard(*_: object) -> None:
        wake()

    with database_errors():
        conn = await pool.acquire()
    try:
        with database_errors():
            await conn.add_listener(CHANNEL, heard)
        yield
    finally:
        with contextlib.suppress(Exception):  # the connection may be gone with the database
            await conn.remove_listener(CHANNEL, heard)
        with contextlib.suppress(Exception):
            await pool.release(conn)


async def waiting(pool: asyncpg.Pool) -> int:
    with database_errors():
        return int(await pool.fetchval("SELECT count(*) FROM event_outbox"))
