"""Batch exports as PostgreSQL records, and the ids they walk: the bookkeeping, not the file.

An export's file is written in parts, and the row says how far it is (`parts`,
`resume_after`) in the same statement as its progress, after each part is in the object
store. A worker that takes over a stopped export goes on from there: a part written but not
recorded is written again under the same key. The row turns `succeeded` only once every part
is written, so a succeeded export is never half-written.
"""

from __future__ import annotations

import secrets
from typing import Any

import asyncpg

from common.errors import NotFound
from storage.db import database_errors

_EXPORT = """export_id, kind, request, state, progress, rows, total, error, parts, resume_after,
             attempts, created_at, started_at, finished_at, heartbeat_at"""


def part_key(export_id: str, part: int) -> str:
    """Where part `part` (from 1) of an export's JSON lines is stored."""
    return f"exports/{export_id}/part-{part:05d}.jsonl"


def folder(export_id: str) -> str:
    return f"exports/{export_id}/"


async def create(pool: asyncpg.Pool, kind: str, request: dict[str, Any]) -> dict[str, Any]:
    export_id = "x_" + secrets.token_hex(8)
    with database_errors():
        row = await pool.fetchrow(
            f"""INSERT INTO exports (export_id, kind, request) VALUES ($1, $2, $3)
                RETURNING {_EXPORT}""",
            export_id,
            kind,
            request,
        )
    assert row is not None, "an insert returns its row"
    return dict(row)


async def get(pool: asyncpg.Pool, export_id: str) -> dict[str, Any]:
    with database_errors():
        row = await pool.fetchrow(f"SELECT {_EXPORT} FROM exports WHERE export_id = $1", export_id)
    if row is None:
        raise NotFound(f"export {export_id!r} does not exist")
    return dict(row)


async def claim(pool: asyncpg.Pool, export_id: str) -> dict[str, Any] | None:
    """Take an export to run (queued, or running under a worker that was lost): one more
    attempt, a fresh heartbeat. None where it is finished (a redelivered task)."""
    with database_errors():
        row = await pool.fetchrow(
            f"""UPDATE exports SET state = 'running', attempts = attempts + 1,
                       started_at = coalesce(started_at, now()), heartbeat_at = now()
                WHERE export_id = $1 AND state IN ('queued', 'running')
                RETURNING {_EXPORT}""",
            export_id,
        )
    return dict(row) if row is not None else None


async def set_total(pool: asyncpg.Pool, export_id: str, total: int) -> None:
    with database_errors():
        await pool.execute(
            "UPDATE exports SET total = $2 WHERE export_id = $1 AND total IS NULL",
            export_id,
            total,
        )


async def part_written(
    pool: asyncpg.Pool, export_id: str, part: int, rows: int, resume_after: str
) -> None:
    """Part `part` is in the object store with `rows` more lines; the next starts after
    `resume_after`."""
    with database_errors():
        await pool.execute(
            """UPDATE exports SET parts = $2, rows = rows + $3, resume_after = $4,
                   progress = CASE WHEN total > 0
                                   THEN least(0.999, (rows + $3)::float8 / total) ELSE 0 END,
                   heartbeat_at = now()
               WHERE export_id = $1 AND state = 'running' AND parts = $2 - 1""",
            export_id,
            part,
            rows,
            resume_after,
        )


async def heartbeat(pool: asyncpg.Pool, export_id: str) -> None:
    with database_errors():
        await pool.execute(
            "UPDATE exports SET heartbeat_at = now() WHERE export_id = $1 AND state = 'running'",
            export_id,
        )


async def finish(pool: asyncpg.Pool, export_id: str, error: str | None = None) -> None:
    """Succeeded (every part written), or failed with `error`."""
    with database_errors():
        await pool.execute(
            """UPDATE exports SET state = CASE WHEN $2::text IS NULL THEN 'succeeded'
                                               ELSE 'failed' END,
                   error = $2, progress = CASE WHEN $2::text IS NULL THEN 1 ELSE progress END,
                   finished_at = now()
               WHERE export_id = $1 AND state IN ('queued', 'running')""",
            export_id,
            error,
        )


async def stalled(pool: asyncpg.Pool, heartbeat_timeout: float) -> list[str]:
    """Running exports whose worker has been silent longer than `heartbeat_timeout`
    seconds (lost: killed, or out of memory), put back in the queue; their ids."""
    with database_errors():
        rows = await pool.fetch(
            """UPDATE exports SET state = 'queued'
               WHERE state = 'running'
                 AND heartbeat_at < now() - make_interval(secs => $1)
               RETURNING export_id""",
            heartbeat_timeout,
        )
    return [r["export_id"] for r in rows]


async def count_ids(pool: asyncpg.Pool, kind: str) -> int:
    """How many users (with a row), or live items, an export of everything walks."""
    query = (
        "SELECT count(*) FROM users"
        if kind == "recommendations"
        else "SELECT count(*) FROM items WHERE deleted_at IS NULL"
    )
    with database_errors():
        return int(await pool.fetchval(query))


async def ids_after(pool: asyncpg.Pool, kind: str, after: str | None, limit: int) -> list[str]:
    """The next `limit` user ids (or live item ids) in id order after `after`."""
    query = (
        "SELECT user_id AS id FROM users WHERE $1::text IS NULL OR user_id > $1"
        " ORDER BY user_id LIMIT $2"
        if kind == "recommendations"
        else "SELECT item_id AS id FROM items WHERE deleted_at IS NULL"
        " AND ($1::text IS NULL OR item_id > $1) ORDER BY item_id LIMIT $2"
    )
    with database_errors():
        rows = await pool.fetch(query, after, limit)
    return [r["id"] for r in rows]
