"""Users and their interactions in PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg

from common.errors import NotFound, UnknownItems
from common.models import InteractionIn, InteractionOut, User
from storage import cursors, erasures, experiments, outbox
from storage.db import Connection, database_errors, transaction

# How many unknown rows an error lists; the message still gives the total.
_REPORTED_ROWS = 100

_USER = """
SELECT u.user_id, u.attributes, u.created_at, u.updated_at,
       count(i.interaction_id) AS interaction_count,
       max(i.occurred_at) AS last_interaction_at
FROM users u LEFT JOIN interactions i ON i.user_id = u.user_id
WHERE u.user_id = $1
GROUP BY u.user_id
"""


async def put_user(pool: asyncpg.Pool, user_id: str, attributes: dict[str, Any]) -> User:
    async with transaction(pool) as conn:
        await conn.execute(
            """INSERT INTO users (user_id, attributes) VALUES ($1, $2)
               ON CONFLICT (user_id) DO UPDATE
               SET attributes = EXCLUDED.attributes, updated_at = now()""",
            user_id,
            attributes,
        )
        row = await conn.fetchrow(_USER, user_id)
    assert row is not None, "the row was written in this transaction"
    return User(**row)


async def get_user(pool: asyncpg.Pool, user_id: str) -> User:
    with database_errors():
        row = await pool.fetchrow(_USER, user_id)
    if row is None:
        raise NotFound(f"user {user_id!r} does not exist")
    return User(**row)


async def record_interactions(
    pool: asyncpg.Pool, interactions: Sequence[InteractionIn]
) -> tuple[int, int]:
    """Store interactions all or nothing; returns (accepted, duplicates).

    A row whose event_id is already stored (or repeats one earlier in the batch) is a duplicate
    and changes nothing; so is a late copy of an erased user's interaction (`_dropped`).
    Unknown users are created; an unknown or deleted item fails the whole call with
    UnknownItems, whose details name each offending row.
    """
    now = datetime.now(UTC)
    async with transaction(pool) as conn:
        await erasures.hold_off(conn)
        unknown = await conn.fetch(
            """SELECT id FROM unnest($1::text[]) AS id
               WHERE NOT EXISTS (
                   SELECT 1 FROM items WHERE item_id = id AND deleted_at IS NULL)""",
            list({r.item_id for r in interactions}),
        )
        if unknown:
            raise _unknown_items(interactions, {r["id"] for r in unknown})
        erased = await erasures.tombstones(conn, (r.user_id for r in interactions))
        kept = [r for r in interactions if not _dropped(r, erased, now)] if erased else interactions
        accepted = await _insert(conn, kept, now) if kept else 0
    return accepted, len(interactions) - accepted


async def erased_since(pool: asyncpg.Pool, user_ids: Sequence[str], since: datetime) -> list[str]:
    """Those of `user_ids` erased after `since`."""
    if not user_ids:
        return []
    with database_errors():
        async with pool.acquire() as conn:
            found = await erasures.tombstones(conn, user_ids)
    return [user_id for user_id, stone in found.items() if stone.erased_at > since]


def _dropped(row: InteractionIn, erased: dict[str, erasures.Tombstone], now: datetime) -> bool:
    """Whether `row` is a late copy of an erased user's interaction: timestamped at or
    before the erasure (a redelivery, a retried batch)."""
    stone = erased.get(row.user_id)
    return stone is not None and (row.timestamp or now) <= stone.erased_at


async def _insert(conn: Connection, interactions: Sequence[InteractionIn], now: datetime) -> int:
    """Write the rows, create their users and queue their profiles' refresh; returns how
    many rows were new."""
    # Rows are written in event_id order so that concurrent batches sharing event ids lock
    # them in the same order and cannot deadlock; the users are sorted for the same reason.
    order = sorted(range(len(interactions)), key=lambda n: interactions[n].event_id or "\uffff")
    event_ids, users, items, types, values, times, lists = [], [], [], [], [], [], []
    for n in order:
        row = interactions[n]
        event_ids.append(row.event_id)
        users.append(row.user_id)
        items.append(row.item_id)
        types.append(row.type)
        values.append(row.value)
        times.append(row.timestamp or now)
        lists.append(row.recommendation_id)
    await conn.execute(
        "INSERT INTO users (user_id) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING",
        sorted(set(users)),
    )
    status = await conn.execute(
        """INSERT INTO interactions
               (event_id, user_id, item_id, type, value, occurred_at, recommendation_id)
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],
                                $5::float8[], $6::timestamptz[], $7::text[])
           ON CONFLICT (event_id) DO NOTHING""",
        event_ids,
        users,
        items,
        types,
        values,
        times,
        lists,
    )
    accepted = int(status.rsplit(" ", 1)[1])
    if accepted:
        # Sorted, like the users above: concurrent batches lock these rows in one order.
        await conn.execute(
            """INSERT INTO profile_refresh (user_id) SELECT unnest($1::text[])
               ON CONFLICT (user_id) DO UPDATE SET queued_at = clock_timestamp()""",
            sorted(set(users)),
        )
    return accepted


async def erase_user(
    pool: asyncpg.Pool, user_id: str, conversion_types: Sequence[str], window_hours: float
) -> datetime:
    """Erase the user from PostgreSQL in one transaction: their row, interactions (with
    their event ids) and queued refresh; their experiment exposures stay counted under a
    pseudonym (storage/experiments.py). Leaves the tombstone; returns the erasure's time."""
    async with transaction(pool) as conn:
        await erasures.exclude_writes(conn)
        erased_at, pseudonym = await erasures.record(conn, user_id)
        await experiments.pseudonymize(conn, user_id, pseudonym, conversion_types, window_hours)
        await conn.execute("DELETE FROM interactions WHERE user_id = $1", user_id)
        await conn.execute("DELETE FROM profile_refresh WHERE user_id = $1", user_id)
        await conn.execute("DELETE FROM users WHERE user_id = $1", user_id)
        await outbox.emit(conn, "user.erased", user_id=user_id)
    return erased_at


async def recent_history(
    pool: asyncpg.Pool, user_ids: Sequence[str], limit: int
) -> list[asyncpg.Record]:
    """The newest `limit` interactions of each user: user_id, item_id, type, value and
    `at` (epoch seconds), read newest first through the (user_id, occurred_at) index."""
    with database_errors():
        rows: list[asyncpg.Record] = await pool.fetch(
            """SELECT u.user_id, i.item_id, i.type, i.value,
                      extract(epoch FROM i.occurred_at)::float8 AS at
               FROM unnest($1::text[]) AS u(user_id)
               CROSS JOIN LATERAL (
                   SELECT item_id, type, value, occurred_at FROM interactions
                   WHERE interactions.user_id = u.user_id
                   ORDER BY occurred_at DESC LIMIT $2) AS i""",
            list(user_ids),
            limit,
        )
    return rows


async def queued_refreshes(pool: asyncpg.Pool, limit: int) -> list[tuple[str, datetime]]:
    """Up to `limit` users whose profiles wait for a refresh, oldest first."""
    with database_errors():
        rows = await pool.fetch(
            "SELECT user_id, queued_at FROM profile_refresh ORDER BY queued_at LIMIT $1", limit
        )
    return [(r["user_id"], r["queued_at"]) for r in rows]


async def queued_for(pool: asyncpg.Pool, user_ids: Sequence[str]) -> list[tuple[str, datetime]]:
    """Which of these users wait for a refresh, with when they were queued."""
    with database_errors():
        rows = await pool.fetch(
            "SELECT user_id, queued_at FROM profile_refresh WHERE user_id = ANY($1::text[])",
            list(user_ids),
        )
    return [(r["user_id"], r["queued_at"]) for r in rows]


async def refreshed(pool: asyncpg.Pool, done: Sequence[tuple[str, datetime]]) -> None:
    """Take users off the queue, unless a newer interaction queued them again meanwhile."""
    with database_errors():
        await pool.execute(
            """DELETE FROM profile_refresh p
               USING unnest($1::text[], $2::timestamptz[]) AS d(user_id, queued_at)
               WHERE p.user_id = d.user_id AND p.queued_at = d.queued_at""",
            [u for u, _ in done],
            [t for _, t in done],
        )


def _unknown_items(interactions: Sequence[InteractionIn], unknown: set[str]) -> UnknownItems:
    rows = [
        {"index": n, "item_id": row.item_id, "code": "unknown_item"}
        for n, row in enumerate(interactions)
        if row.item_id in unknown
    ]
    shown = ", ".join(repr(i) for i in sorted(unknown)[:5])
    more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
    return UnknownItems(
        f"{len(rows)} interaction(s) name items the catalog does not hold: {shown}{more}",
        details=rows[:_REPORTED_ROWS],
    )


async def user_interactions(
    pool: asyncpg.Pool, user_id: str, limit: int, cursor: str | None
) -> tuple[list[InteractionOut], str | None]:
    """A page of the user's interactions, newest first (ties by arrival, newest first), and
    the cursor of the next page (None at the end). An unknown user is a NotFound."""
    after = cursors.decode_keyset(cursor, int) if cursor else None
    with database_errors():
        async with pool.acquire() as conn:
            if not await conn.fetchval("SELECT 1 FROM users WHERE user_id = $1", user_id):
                raise NotFound(f"user {user_id!r} does not exist")
            rows = await conn.fetch(
                """SELECT interaction_id, item_id, type, value, occurred_at, event_id
                   FROM interactions
                   WHERE user_id = $1
                     AND ($2::timestamptz IS NULL OR (occurred_at, interaction_id) < ($2, $3))
                   ORDER BY occurred_at DESC, interaction_id DESC LIMIT $4""",
                user_id,
                after[0] if after else None,
                after[1] if after else 0,
                limit + 1,
            )
    page = [
        InteractionOut(
            item_id=r["item_id"],
            type=r["type"],
            value=r["value"],
            timestamp=r["occurred_at"],
            event_id=r["event_id"],
        )
        for r in rows[:limit]
    ]
    more = len(rows) > limit
    last = rows[limit - 1] if more else None
    following = cursors.encode_keyset(last["occurred_at"], last["interaction_id"]) if last else None
    return page, following
