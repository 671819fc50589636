"""Index builds and versions as PostgreSQL records: the bookkeeping, not the artifacts."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import asyncpg

from common.errors import NotFound
from storage import cursors, outbox
from storage.db import database_errors, transaction

# A queued build that no worker took within this long is marked failed.
QUEUE_TIMEOUT_SECONDS = 600.0

_BUILD = """build_id, state, stage, progress, reason, force, error, version, attempts,
            created_at, started_at, finished_at, heartbeat_at"""


async def request_build(
    pool: asyncpg.Pool,
    reason: str | None,
    force: bool,
    queue_timeout: float,
    heartbeat_timeout: float,
) -> tuple[dict[str, Any], bool]:
    """Queue a build, or return the one already queued or running. (build, created)."""
    await fail_stale(pool, queue_timeout=queue_timeout, heartbeat_timeout=heartbeat_timeout)
    build_id = "b_" + secrets.token_hex(8)
    async with transaction(pool) as conn:
        row = await conn.fetchrow(
            f"""INSERT INTO builds (build_id, state, reason, force) VALUES ($1, 'queued', $2, $3)
                ON CONFLICT ((true)) WHERE state IN ('queued', 'running') DO NOTHING
                RETURNING {_BUILD}""",
            build_id,
            reason,
            force,
        )
        if row is not None:
            await outbox.emit(conn, "build.queued", build_id=build_id, reason=reason, force=force)
            return dict(row), True
        running = await conn.fetchrow(
            f"SELECT {_BUILD} FROM builds WHERE state IN ('queued', 'running')"
        )
    if running is None:  # it finished between the two statements: ask again
        return await request_build(pool, reason, force, queue_timeout, heartbeat_timeout)
    return dict(running), False


async def get_build(pool: asyncpg.Pool, build_id: str) -> dict[str, Any]:
    """A build, with the quality gate's verdict on the version it made (if it made one)."""
    with database_errors():
        row = await pool.fetchrow(
            f"""SELECT {_BUILD},
                       (SELECT v.manifest->'gate' FROM index_versions v
                        WHERE v.version = builds.version) AS gate
                FROM builds WHERE build_id = $1""",
            build_id,
        )
    if row is None:
        raise NotFound(f"build {build_id!r} does not exist")
    return dict(row)


async def recent_builds(
    pool: asyncpg.Pool, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of builds, newest first (ties by id), and the cursor of the next page (None at
    the end)."""
    after = cursors.decode_keyset(cursor) if cursor else None
    with database_errors():
        rows = await pool.fetch(
            f"""SELECT {_BUILD},
                       (SELECT v.manifest->'gate' FROM index_versions v
                        WHERE v.version = builds.version) AS gate
                FROM builds
                WHERE $2::timestamptz IS NULL OR (created_at, build_id) < ($2, $3)
                ORDER BY created_at DESC, build_id DESC LIMIT $1""",
            limit + 1,
            after[0] if after else None,
            after[1] if after else "",
        )
    last = rows[limit - 1] if len(rows) > limit else None
    following = cursors.encode_keyset(last["created_at"], last["build_id"]) if last else None
    return [dict(r) for r in rows[:limit]], following


async def fail_stale(pool: asyncpg.Pool, *, queue_timeout: float, heartbeat_timeout: float) -> int:
    """Mark failed the builds whose worker fell silent, or that no worker took up."""
    async with transaction(pool) as conn:
        failed = await conn.fetch(
            """UPDATE builds SET state = 'failed', finished_at = now(),
                   error = CASE state
                       WHEN 'running' THEN 'the worker stopped reporting (lost or killed)'
                       ELSE 'no worker took the build up in time' END
               WHERE (state = 'running'
                      AND coalesce(heartbeat_at, started_at) < now() - make_interval(secs => $1))
                  OR (state = 'queued' AND created_at < now() - make_interval(secs => $2))
               RETURNING build_id, error""",
            heartbeat_timeout,
            queue_timeout,
        )
        for row in failed:
            await outbox.emit(conn, "build.failed", build_id=row["build_id"], error=row["error"])
    return len(failed)


async def start_build(pool: asyncpg.Pool, build_id: str) -> dict[str, Any] | None:
    """Claim a queued build for this worker, counting the attempt; None when it is no longer
    queued or running (it failed meanwhile, or this is a redelivery of a finished one)."""
    async with transaction(pool) as conn:
        row = await conn.fetchrow(
            f"""UPDATE builds SET state = 'running', stage = 'starting', attempts = attempts + 1,
                   started_at = coalesce(started_at, now()), heartbeat_at = now()
                WHERE build_id = $1 AND state IN ('queued', 'running')
                RETURNING {_BUILD}""",
            build_id,
        )
        if row is not None:
            await outbox.emit(conn, "build.started", build_id=build_id, attempt=row["attempts"])
    return dict(row) if row else None


async def report(pool: asyncpg.Pool, build_id: str, stage: str, progress: float) -> None:
    with database_errors():
        await pool.execute(
            """UPDATE builds SET stage = $2, progress = greatest(progress, $3), heartbeat_at = now()
               WHERE build_id = $1 AND state = 'running'""",
            build_id,
            stage,
            min(max(progress, 0.0), 1.0),
        )


async def heartbeat(pool: asyncpg.Pool, build_id: str) -> None:
    with database_errors():
        await pool.execute(
            "UPDATE builds SET heartbeat_at = now() WHERE build_id = $1 AND state = 'running'",
            build_id,
        )


async def finish_build(
    pool: asyncpg.Pool, build_id: str, *, version: int | None, error: str | None, stage: str
) -> None:
    """Record how a build ended, once: a build already finished keeps its outcome."""
    state = "failed" if error else "succeeded"
    async with transaction(pool) as conn:
        status = await conn.execute(
            """UPDATE builds SET state = $2, stage = $3, error = $4, version = $5,
                   progress = CASE WHEN $4::text IS NULL THEN 1 ELSE progress END,
                   finished_at = now()
               WHERE build_id = $1 AND state IN ('queued', 'running')""",
            build_id,
            state,
            stage,
            error,
            version,
        )
        if not status.endswith(" 0"):
            await outbox.emit(
                conn, f"build.{state}", build_id=build_id, version=version, stage=stage, error=error
            )


async def next_version(pool: asyncpg.Pool) -> int:
    with database_errors():
        return int(await pool.fetchval("SELECT nextval('index_version_seq')"))


async def record_version(
    pool: asyncpg.Pool, manifest: dict[str, Any], state: str = "ready"
) -> None:
    """Record a version whose artifacts are all uploaded: only now can it be activated.

    `rejected` records one the quality gate held back: activated only when asked for."""
    async with transaction(pool) as conn:
        if state == "rejected":
            gate = manifest.get("gate") or {}
            await outbox.emit(
                conn, "version.rejected", version=manifest["version"], reason=gate.get("reason")
            )
        await conn.execute(
            """INSERT INTO index_versions (version, state, created_at, items, users, manifest,
                                           metrics)
               VALUES ($1, $7, $2, $3, $4, $5, $6)""",
            manifest["version"],
            datetime.fromisoformat(manifest["created_at"]),
            manifest["items"],
            manifest["users"],
            manifest,
            manifest.get("metrics", {}),
            state,
        )


async def activate(pool: asyncpg.Pool, version: int) -> None:
    """Point every API process at `version`: one row, changed in one statement. A rejected
    version asked for by name becomes ready: someone chose to serve it."""
    async with transaction(pool) as conn:
        status = await conn.execute(
            """WITH chosen AS (
                   UPDATE index_versions SET state = 'ready'
                   WHERE version = $1 AND state IN ('ready', 'rejected') RETURNING version)
               INSERT INTO active_index (singleton, version)
               SELECT true, version FROM chosen
               ON CONFLICT (singleton) DO UPDATE
               SET version = EXCLUDED.version, changed_at = now()""",
            version,
        )
        if not status.endswith(" 0"):
            await outbox.emit(conn, "version.activated", version=version)
    if status.endswith(" 0"):
        raise NotFound(f"version {version} does not exist or was removed")


async def active_version(pool: asyncpg.Pool) -> int | None:
    with database_errors():
        value = await pool.fetchval("SELECT version FROM active_index")
    return int(value) if value is not None else None


async def list_versions(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    with database_errors():
        rows = await pool.fetch(
            """SELECT version, created_at, items, users, metrics, state FROM index_versions
               WHERE state IN ('ready', 'rejected') ORDER BY version DESC"""
        )
    return [dict(r) for r in rows]


async def get_version(pool: asyncpg.Pool, version: int) -> dict[str, Any]:
    with database_errors():
        row = await pool.fetchrow(
            """SELECT version, created_at, items, users, metrics, state, manifest
               FROM index_versions WHERE version = $1 AND state IN ('ready', 'rejected')""",
            version,
        )
    if row is None:
        raise NotFound(f"version {version} does not exist")
    return dict(row)


async def versions_to_retire(pool: asyncpg.Pool, keep: int) -> list[int]:
    """Kept versions (ready or rejected) beyond the newest `keep`, never the active one nor
    one that a running experiment pins."""
    with database_errors():
        rows = await pool.fetch(
            """SELECT version FROM index_versions
               WHERE state IN ('ready', 'rejected')
                 AND version NOT IN (SELECT version FROM active_index)
                 AND version NOT IN (SELECT unnest(pinned_versions) FROM experiments
                                     WHERE stopped_at IS NULL)
                 AND version NOT IN (SELECT version FROM index_versions
                                     WHERE state IN ('ready', 'rejected')
                                     ORDER BY version DESC LIMIT $1)""",
            keep,
        )
    return [int(r["version"]) for r in rows]


async def mark_retired(pool: asyncpg.Pool, version: int) -> bool:
    """Take a version out of service unless it became active, or an experiment pinned it,
    meanwhile; True if it was.

    Its artifacts may be deleted only after this returns True: from then on it can no
    longer be activated. The version's row is locked first, and only then are activation
    and pins read, in statements of their own: an experiment that pinned it (holding the
    row's share lock until it committed) is always seen.
    """
    async with transaction(pool) as conn:
        state = await conn.fetchval(
            "SELECT state FROM index_versions WHERE version = $1 FOR UPDATE", version
        )
        if state not in ("ready", "rejected"):
            return False
        held = await conn.fetchval(
            """SELECT EXISTS (SELECT 1 FROM active_index WHERE version = $1)
                   OR EXISTS (SELECT 1 FROM experiments
                              WHERE stopped_at IS NULL AND $1 = ANY(pinned_versions))""",
            version,
        )
        if held:
            return False
        await conn.execute(
            "UPDATE index_versions SET state = 'deleted' WHERE version = $1", version
        )
    return True


async def still_filling(pool: asyncpg.Pool, version: int, *, by_its_build: bool = False) -> bool:
    """Whether ranking more of `version`'s lists is still worth it. For its own build, which
    ranks them before activating it (`by_its_build`): while the version is kept (recorded
    ready, not retired). For anyone else, once it is live: while it is the active version and
    no build is queued or running (whose version would take its place)."""
    with database_errors():
        if by_its_build:
            return bool(
                await pool.fetchval(
                    "SELECT EXISTS (SELECT 1 FROM index_versions WHERE version = $1"
                    " AND state = 'ready')",
                    version,
                )
            )
        return bool(
            await pool.fetchval(
                """SELECT coalesce((SELECT version FROM active_index) = $1, false)
                      AND NOT EXISTS (SELECT 1 FROM builds WHERE state IN ('queued', 'running'))""",
                version,
            )
        )


async def record_lists_part(pool: asyncpg.Pool, version: int, part: dict[str, Any]) -> None:
    """Record a part of `version`'s lists ranked after its build's precompute (by the build,
    before it activates the version, or by the workers after), once its file is in the
    object store: from now on every API process that serves the version reads it in."""
    with database_errors():
        await pool.execute(
            """INSERT INTO version_lists (version, part, name, sha256, bytes, users, ranked_with)
               VALUES ($1, $2, $3, $4, $5, $6, $7)""",
            version,
            part["part"],
            part["name"],
            part["sha256"],
            part["bytes"],
            part["users"],
            part["ranked_with"],
        )


@asynccontextmanager
async def fill_claim(pool: asyncpg.Pool, version: int) -> AsyncIterator[bool]:
    """Whether this process may rank the next part of `version`'s lists now: one process at
    a time (a PostgreSQL advisory lock, held until the block ends or its connection does),
    so that two chains of parts never rank the same users."""
    key = f"recs:fill-lists:{version}"
    with database_errors():
        conn = await pool.acquire()
    try:
        with database_errors():
            claimed = bool(
                await conn.fetchval("SELECT pg_try_advisory_lock(hashtextextended($1, 0))", key)
            )
        try:
            yield claimed
        finally:
            if claimed:
                with database_errors():
                    await conn.execute("SELECT pg_advisory_unlock(hashtextextended($1, 0))", key)
    finally:
        await pool.release(conn)


async def next_lists_part(pool: asyncpg.Pool, version: int) -> int:
    """The number the next part of `version`'s lists takes."""
    with database_errors():
        found = await pool.fetchval(
            "SELECT coalesce(max(part), 0) FROM version_lists WHERE version = $1", version
        )
    return int(found) + 1


async def lists_parts(pool: asyncpg.Pool, version: int) -> list[dict[str, Any]]:
    """The parts of `version`'s lists recorded so far, in order."""
    with database_errors():
        rows = await pool.fetch(
            """SELECT part, name, sha256, bytes, users, ranked_with FROM version_lists
               WHERE version = $1 ORDER BY part""",
            version,
        )
    return [dict(r) for r in rows]
