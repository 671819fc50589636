"""Erasure tombstones, which keep a late copy of an erased user's interactions out, and the
Redis side of an erasure (storage/activity.py erases the user from PostgreSQL).

The tombstone is kept by the id's SHA-256, so the id itself is gone too. Ingest and erasure
exclude each other with one advisory lock: every write of interactions holds it shared, an
erasure exclusively, so no batch that was checked against the tombstones before an erasure
commits after it.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from redis.asyncio import Redis

from storage.cache import redis_errors
from storage.db import Connection, database_errors
from storage.events import profile_key, ranked_key, stored_key

# The advisory lock ingest holds shared and erasure exclusively (an arbitrary constant).
ERASURE_LOCK = 0x5265_6373_4572  # "RecsEr"


def user_hash(user_id: str) -> bytes:
    return hashlib.sha256(user_id.encode()).digest()


async def record(conn: Connection, user_id: str) -> tuple[datetime, str]:
    """Leave (or move forward) the user's tombstone, within the erasure's transaction;
    returns its time and the pseudonym their experiment figures count under."""
    row = await conn.fetchrow(
        """INSERT INTO erasures (user_hash, erased_at, pseudonym) VALUES ($1, now(), $2)
           ON CONFLICT (user_hash) DO UPDATE SET erased_at = EXCLUDED.erased_at
           RETURNING erased_at, pseudonym""",
        user_hash(user_id),
        f"erased-{uuid.uuid4().hex}",
    )
    assert row is not None, "an upsert returns its row"
    return row["erased_at"], row["pseudonym"]


async def hold_off(conn: Connection) -> None:
    """Within an interactions write: wait for an erasure committing now, and keep new
    ones from starting until this transaction ends."""
    await conn.execute("SELECT pg_advisory_xact_lock_shared($1)", ERASURE_LOCK)


async def exclude_writes(conn: Connection) -> None:
    """Within an erasure: wait for the interactions writes in flight, and hold off new ones
    until this transaction ends."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", ERASURE_LOCK)


@dataclass(frozen=True)
class Tombstone:
    erased_at: datetime
    pseudonym: str


async def tombstones(conn: Connection, user_ids: Iterable[str]) -> dict[str, Tombstone]:
    """The tombstone of each of these ids that was ever erased: when, and the pseudonym its
    experiment figures count under."""
    by_hash = {user_hash(u): u for u in set(user_ids)}
    rows = await conn.fetch(
        """SELECT user_hash, erased_at, pseudonym FROM erasures
           WHERE user_hash = ANY($1::bytea[])""",
        list(by_hash),
    )
    return {by_hash[bytes(r["user_hash"])]: Tombstone(r["erased_at"], r["pseudonym"]) for r in rows}


async def erased_since(pool: asyncpg.Pool, since: datetime) -> list[bytes]:
    """The hashes of the ids erased after `since`."""
    with database_errors():
        rows = await pool.fetch("SELECT user_hash FROM erasures WHERE erased_at > $1", since)
    return [bytes(r["user_hash"]) for r in rows]


async def clear_redis(redis: Redis, user_id: str) -> None:
    """The user's stored profile, their list ranked from it, and the note that they have one."""
    with redis_errors(redis, "erasing a user's profile"):
        async with redis.pipeline(transaction=False) as pipe:
            pipe.delete(profile_key(user_id), ranked_key(user_id))
            pipe.zrem(stored_key(), user_id)
            await pipe.execute()
