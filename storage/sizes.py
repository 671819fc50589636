"""How many items, users and interactions there are, without reading whole tables.

A count(*) over millions of interactions takes seconds; PostgreSQL's own estimate (kept by
ANALYZE and autovacuum) costs nothing. Below EXACT_BELOW rows, where an estimate can be off
by a large share or missing altogether, the rows are counted, at most that many."""

from __future__ import annotations

import asyncpg

from storage.db import database_errors

EXACT_BELOW = 100_000
# Counted: the live items only (deleted ones stay as rows until a build drops them); the
# estimate, for a large catalog, counts both.
_TABLES = {
    "items": "SELECT 1 FROM items WHERE deleted_at IS NULL",
    "users": "SELECT 1 FROM users",
    "interactions": "SELECT 1 FROM interactions",
}


async def table_sizes(pool: asyncpg.Pool) -> dict[str, tuple[int, bool]]:
    """Per table: (rows, exact)."""
    found: dict[str, tuple[int, bool]] = {}
    with database_errors():
        async with pool.acquire() as conn:
            rows_of = await conn.fetch(
                "SELECT relname, reltuples::bigint AS rows FROM pg_class"
                " WHERE relname = ANY($1::text[]) AND relkind = 'r'"
                " AND relnamespace = current_schema()::regnamespace",
                list(_TABLES),
            )
            estimates = {r["relname"]: int(r["rows"]) for r in rows_of}
            for table, rows in _TABLES.items():
                estimate = estimates.get(table, -1)
                if estimate >= EXACT_BELOW:  # -1: never analysed
                    found[table] = (estimate, False)
                    continue
                counted = await conn.fetchval(
                    f"SELECT count(*) FROM ({rows} LIMIT {EXACT_BELOW}) AS t"
                )
                found[table] = (int(counted), int(counted) < EXACT_BELOW)
    return found
