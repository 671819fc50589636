"""The impression stream: copied into PostgreSQL once, however many flushes run, and kept in
Redis by a flush that fails."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest
from redis.asyncio import Redis

from common.errors import CacheUnavailable
from common.models import ExperimentIn, VariantIn
from storage import experiments as stored


async def make(db: asyncpg.Pool) -> None:
    body = ExperimentIn(
        experiment_id="e",
        variants=[VariantIn(name="control", weight=1), VariantIn(name="b", weight=1)],
    )
    await stored.create(db, body, "salt", set())


def answers(count: int) -> list[stored.Impression]:
    now = time.time()
    return [
        ("e", "b", f"u{n % 50}", [f"i{n % 7}", f"i{(n + 1) % 7}"], 1, now) for n in range(count)
    ]


async def totals(db: asyncpg.Pool) -> tuple[int, int]:
    row = await db.fetchrow(
        "SELECT coalesce(sum(impressions), 0) AS shown, count(*) AS pairs FROM experiment_exposures"
    )
    assert row is not None
    return int(row["shown"]), int(row["pairs"])


async def test_flushes_running_together_count_each_impression_once(
    db: asyncpg.Pool, redis: Redis
) -> None:
    await make(db)
    await stored.append_impressions(redis, answers(1_000), maxlen=100_000)
    copied = list(await asyncio.gather(*(stored.flush(db, redis, limit=150) for _ in range(6))))
    while more := await stored.flush(db, redis, limit=150):
        copied.append(more)
    assert sum(copied) == 1_000
    pairs = {(n % 50, (n + k) % 7) for n in range(1_000) for k in (0, 1)}
    assert await totals(db) == (2_000, len(pairs))
    served = await db.fetchval("SELECT impressions FROM experiment_served")
    assert served == 2_000
    # Copied and trimmed: the stream keeps at most the last entry.
    assert await redis.xlen(stored.STREAM) <= 1


async def test_a_flush_that_cannot_write_leaves_the_impressions_in_redis(
    db: asyncpg.Pool, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    await make(db)
    await stored.append_impressions(redis, answers(10), maxlen=100_000)

    async def refused(*_: object, **__: object) -> None:
        raise CacheUnavailable("Redis is unavailable (trimming): test")

    # The copy commits, then trimming fails: the next flush starts past what was copied.
    monkeypatch.setattr(redis, "xtrim", refused)
    with pytest.raises(CacheUnavailable):
        await stored.flush(db, redis)
    monkeypatch.undo()
    assert await stored.flush(db, redis) == 0
    assert (await totals(db))[0] == 20
    # A database that refuses the copy moves nothing: the entries wait in the stream.
    await stored.append_impressions(redis, answers(5), maxlen=100_000)
    await db.execute(
        "ALTER TABLE experiment_exposures ADD CONSTRAINT no_more CHECK (impressions < 0) NOT VALID"
    )
    try:
        with pytest.raises(asyncpg.CheckViolationError):
            await stored.flush(db, redis)
    finally:
        await db.execute("ALTER TABLE experiment_exposures DROP CONSTRAINT no_more")
    assert await stored.flush(db, redis) == 5
    assert (await totals(db))[0] == 30
