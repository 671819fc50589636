"""Experiments in PostgreSQL, and their impressions: a Redis stream the API appends to, which
`flush` copies into PostgreSQL exactly once.

The API never writes PostgreSQL per answer. Each process buffers its answers' impressions
and appends them to the stream in batches; a flush (the worker's tick, or a results request)
reads the stream past the position stored in PostgreSQL, adds the counts and moves the
position in one transaction, and only then trims the stream. A flush that fails changes
nothing; two that run at once take turns on the position's row lock.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from redis.asyncio import Redis

from common.errors import Conflict, InvalidInput, NotFound
from common.models import Experiment, ExperimentIn, Variant
from storage import erasures, outbox
from storage.cache import redis_errors
from storage.db import Connection, database_errors, transaction

STREAM = "recs:experiments:impressions"
_COLUMNS = """experiment_id, description, variants, salt, guardrail, created_at, stopped_at,
              stop_reason, last_results, results_at,
              (SELECT coalesce(jsonb_object_agg(variant, jsonb_build_object(
                          'stopped_at', stopped_at, 'reason', reason)), '{}')
               FROM experiment_variant_stops s
               WHERE s.experiment_id = experiments.experiment_id) AS variant_stops"""


def _experiment(row: asyncpg.Record) -> Experiment:
    stops: dict[str, dict[str, Any]] = row["variant_stops"]
    variants = []
    for raw in row["variants"]:
        stop = stops.get(raw["name"])
        variants.append(
            Variant(
                **raw,
                active=stop is None and row["stopped_at"] is None,
                stopped_at=stop["stopped_at"] if stop else None,
                stop_reason=stop["reason"] if stop else None,
            )
        )
    return Experiment(
        experiment_id=row["experiment_id"],
        description=row["description"],
        variants=variants,
        active=row["stopped_at"] is None,
        guardrail=row["guardrail"],
        created_at=row["created_at"],
        stopped_at=row["stopped_at"],
        stop_reason=row["stop_reason"],
    )


async def create(pool: asyncpg.Pool, body: ExperimentIn, salt: str, pinned: set[int]) -> Experiment:
    """Store a new experiment. Conflict if the id is taken; InvalidInput if a pinned
    version is not kept (ready or rejected). The pinned versions are locked until the
    experiment is stored, so retention cannot take one meanwhile."""
    controls = [v for v in body.variants if v.control] or [
        v for v in body.variants if v.name == "control"
    ]
    variants = [
        {"name": v.name, "weight": v.weight, "params": v.params, "control": v is controls[0]}
        for v in body.variants
    ]
    async with transaction(pool) as conn:
        kept = await conn.fetch(
            """SELECT version FROM index_versions
               WHERE version = ANY($1::bigint[]) AND state IN ('ready', 'rejected')
               FOR SHARE""",
            sorted(pinned),
        )
        missing = sorted(pinned - {int(r["version"]) for r in kept})
        if missing:
            raise InvalidInput(
                f"index version(s) {missing} do not exist (or were retired): a variant can "
                "pin only a kept version",
                details=[
                    {"field": "params.index_version", "message": f"no version {v}"} for v in missing
                ],
            )
        status = await conn.execute(
            """INSERT INTO experiments
                   (experiment_id, description, variants, salt, guardrail, pinned_versions)
               VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (experiment_id) DO NOTHING""",
            body.experiment_id,
            body.description,
            variants,
            salt,
            body.guardrail,
            sorted(pinned),
        )
        if status.endswith(" 0"):
            raise Conflict(f"experiment {body.experiment_id!r} exists already")
        await outbox.emit(
            conn,
            "experiment.started",
            experiment_id=body.experiment_id,
            variants=[v["name"] for v in variants],
        )
        row = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM experiments WHERE experiment_id = $1", body.experiment_id
        )
    assert row is not None, "written in this transaction"
    return _experiment(row)


async def get(pool: asyncpg.Pool, experiment_id: str) -> Experiment:
    with database_errors():
        row = await pool.fetchrow(
            f"SELECT {_COLUMNS} FROM experiments WHERE experiment_id = $1", experiment_id
        )
    if row is None:
        raise NotFound(f"experiment {experiment_id!r} does not exist")
    return _experiment(row)


ToServe = list[tuple[Experiment, str, dict[str, Any] | None]]


async def all_of(pool: asyncpg.Pool) -> list[Experiment]:
    """Every experiment, newest first."""
    with database_errors():
        rows = await pool.fetch(f"SELECT {_COLUMNS} FROM experiments ORDER BY created_at DESC")
    return [_experiment(r) for r in rows]


async def to_serve(pool: asyncpg.Pool, stopped: int) -> ToServe:
    """What an API process holds: every running experiment and the newest `stopped` ones,
    newest first, each with its salt and its latest stored results."""
    with database_errors():
        rows = await pool.fetch(
            f"""(SELECT {_COLUMNS} FROM experiments WHERE stopped_at IS NULL)
                UNION ALL
                (SELECT {_COLUMNS} FROM experiments WHERE stopped_at IS NOT NULL
                 ORDER BY created_at DESC LIMIT $1)
                ORDER BY created_at DESC""",
            stopped,
        )
    return [(_experiment(r), r["salt"], r["last_results"]) for r in rows]


async def stop(pool: asyncpg.Pool, experiment_id: str, reason: str | None) -> Experiment:
    """End an experiment (a second stop keeps the first's time and reason)."""
    async with transaction(pool) as conn:
        status = await conn.execute(
            """UPDATE experiments SET stopped_at = now(), stop_reason = $2
               WHERE experiment_id = $1 AND stopped_at IS NULL""",
            experiment_id,
            reason or "stopped",
        )
        if not status.endswith(" 0"):
            await outbox.emit(
                conn, "experiment.stopped", experiment_id=experiment_id, reason=reason or "stopped"
            )
        row = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM experiments WHERE experiment_id = $1", experiment_id
        )
    if row is None:
        raise NotFound(f"experiment {experiment_id!r} does not exist")
    return _experiment(row)


async def stop_variant(
    pool: asyncpg.Pool, experiment_id: str, variant: str, reason: str, figures: dict[str, Any]
) -> bool:
    """Take one variant out of a running experiment; False if it was out already."""
    async with transaction(pool) as conn:
        status = await conn.execute(
            """INSERT INTO experiment_variant_stops (experiment_id, variant, reason, figures)
               SELECT $1, $2, $3, $4 FROM experiments
               WHERE experiment_id = $1 AND stopped_at IS NULL
               ON CONFLICT DO NOTHING""",
            experiment_id,
            variant,
            reason,
            figures,
        )
        if not status.endswith(" 0"):
            await outbox.emit(
                conn,
                "experiment.stopped",
                experiment_id=experiment_id,
                variant=variant,
                reason=reason,
            )
    return not status.endswith(" 0")


async def save_results(pool: asyncpg.Pool, experiment_id: str, results: dict[str, Any]) -> None:
    with database_errors():
        await pool.execute(
            "UPDATE experiments SET last_results = $2, results_at = now() WHERE experiment_id = $1",
            experiment_id,
            results,
        )


# Whether exposure `x` converted, for conversion types $2 and a window of $3 seconds.
CONVERTED = """x.converted OR EXISTS (
    SELECT 1 FROM interactions i
    WHERE i.user_id = x.user_id AND i.item_id = x.item_id AND i.type = ANY($2::text[])
      AND CASE WHEN i.recommendation_id IS NULL THEN
              i.occurred_at >= x.first_shown_at
              AND i.occurred_at <= x.last_shown_at + make_interval(secs => $3)
          ELSE EXISTS (
              SELECT 1 FROM experiment_lists l
              WHERE l.recommendation_id = i.recommendation_id
                AND l.experiment_id = x.experiment_id AND x.item_id = ANY(l.item_ids))
          END)"""

Impression = tuple[str, str, str, Sequence[str], int, float, str]


async def append_impressions(redis: Redis, shown: Sequence[Impression], maxlen: int) -> None:
    """Add answers' impressions to the stream: (experiment, variant, user, item ids, index
    version, epoch seconds, recommendation_id) each, in one round trip."""
    with redis_errors(redis, "recording experiment impressions"):
        async with redis.pipeline(transaction=False) as pipe:
            for entry in shown:
                pipe.xadd(STREAM, {"d": orjson.dumps(entry)}, maxlen=maxlen, approximate=True)
            await pipe.execute()


async def flush(pool: asyncpg.Pool, redis: Redis, limit: int = 20_000) -> int:
    """Copy up to `limit` answers' impressions from the stream into PostgreSQL; returns how
    many answers were copied (fewer than `limit`: the stream is drained)."""
    async with transaction(pool) as conn:
        await conn.execute(
            """INSERT INTO experiment_flush (stream, last_id) VALUES ($1, '0-0')
               ON CONFLICT DO NOTHING""",
            STREAM,
        )
        last = await conn.fetchval(
            "SELECT last_id FROM experiment_flush WHERE stream = $1 FOR UPDATE", STREAM
        )
        with redis_errors(redis, "reading experiment impressions"):
            entries = await redis.xrange(STREAM, min=f"({last}", count=limit)
        if not entries:
            return 0
        exposures: dict[tuple[str, str, str], list[Any]] = {}
        served: dict[tuple[str, str, int], int] = defaultdict(int)
        lists: list[tuple[str, str, str, str, list[str], datetime]] = []
        decoded = [orjson.loads(fields[b"d"]) for _, fields in entries]  # type: ignore[index]
        # A user erased since their answer was shown counts under their pseudonym.
        stones = await erasures.tombstones(conn, (entry[2] for entry in decoded))
        erased = {user: stone.pseudonym for user, stone in stones.items()}
        for entry in decoded:
            experiment, variant, user, items, version, at = entry[:6]
            user = erased.get(user, user)
            when = datetime.fromtimestamp(at, UTC)
            if len(entry) > 6:  # entries appended before lists were named have no id
                lists.append((entry[6], experiment, variant, user, items, when))
            served[(experiment, variant, version)] += len(items)
            for item in items:
                found = exposures.get((experiment, user, item))
                if found is None:
                    exposures[(experiment, user, item)] = [variant, 1, when, when]
                else:
                    found[1] += 1
                    found[2], found[3] = min(found[2], when), max(found[3], when)
        keys, values = list(exposures), list(exposures.values())
        # Impressions of an experiment deleted meanwhile are dropped by the join.
        await conn.execute(
            """INSERT INTO experiment_exposures AS x
                   (experiment_id, user_id, item_id, variant, impressions, first_shown_at,
                    last_shown_at)
               SELECT n.* FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],
                                      $5::int[], $6::timestamptz[], $7::timestamptz[])
                      AS n(e, u, i, v, c, f, l)
               JOIN experiments ON experiments.experiment_id = n.e
               ON CONFLICT (experiment_id, user_id, item_id) DO UPDATE
               SET impressions = x.impressions + EXCLUDED.impressions,
                   first_shown_at = least(x.first_shown_at, EXCLUDED.first_shown_at),
                   last_shown_at = greatest(x.last_shown_at, EXCLUDED.last_shown_at)""",
            [k[0] for k in keys],
            [k[1] for k in keys],
            [k[2] for k in keys],
            [v[0] for v in values],
            [v[1] for v in values],
            [v[2] for v in values],
            [v[3] for v in values],
        )
        await conn.execute(
            """INSERT INTO experiment_served AS s (experiment_id, variant, index_version,
                                                   impressions)
               SELECT n.* FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[])
                      AS n(e, v, n, c)
               JOIN experiments ON experiments.experiment_id = n.e
               ON CONFLICT (experiment_id, variant, index_version) DO UPDATE
               SET impressions = s.impressions + EXCLUDED.impressions""",
            [k[0] for k in served],
            [k[1] for k in served],
            [k[2] for k in served],
            list(served.values()),
        )
        await conn.executemany(
            """INSERT INTO experiment_lists
                   (recommendation_id, experiment_id, variant, user_id, item_ids, shown_at)
               SELECT $1, $2, $3, $4, $5, $6 FROM experiments WHERE experiment_id = $2
               ON CONFLICT DO NOTHING""",
            lists,
        )
        last_id = entries[-1][0]
        newest = last_id.decode() if isinstance(last_id, bytes) else str(last_id)
        await conn.execute(
            "UPDATE experiment_flush SET last_id = $2 WHERE stream = $1", STREAM, newest
        )
    # Copied and committed: what the stream holds up to here, this entry included (it may
    # name a user erased since), is no longer needed. MINID keeps ids from the one given.
    ms, seq = newest.split("-")
    with redis_errors(redis, "trimming experiment impressions"):
        await redis.xtrim(STREAM, minid=f"{ms}-{int(seq) + 1}", approximate=False)
    return len(entries)


async def pseudonymize(
    conn: Connection,
    user_id: str,
    pseudonym: str,
    conversion_types: Sequence[str],
    window_hours: float,
) -> None:
    """Within an erasure: the user's exposures and lists stay counted under `pseudonym`,
    with whether each exposure converted fixed now (the interactions that say so go).

    It waits for a flush in flight (it holds the stream's row): one that read the
    pseudonyms before this erasure committed has its rows re-keyed here, and one that
    starts after reads the pseudonym."""
    await conn.execute(
        """INSERT INTO experiment_flush (stream, last_id) VALUES ($1, '0-0')
           ON CONFLICT DO NOTHING""",
        STREAM,
    )
    await conn.execute("SELECT 1 FROM experiment_flush WHERE stream = $1 FOR UPDATE", STREAM)
    await conn.execute(
        f"""UPDATE experiment_exposures x SET converted = {CONVERTED}, user_id = $4
            WHERE x.user_id = $1""",
        user_id,
        list(conversion_types),
        window_hours * 3600.0,
        pseudonym,
    )
    await conn.execute(
        "UPDATE experiment_lists SET user_id = $2 WHERE user_id = $1", user_id, pseudonym
    )


async def drain(pool: asyncpg.Pool, redis: Redis) -> None:
    """Flush until the stream is empty."""
    limit = 20_000
    while await flush(pool, redis, limit) == limit:
        pass


async def timeline(
    pool: asyncpg.Pool,
    experiment_id: str,
    conversion_types: Sequence[str],
    window_hours: float,
    step_seconds: float,
) -> list[tuple[str, datetime, int, int]]:
    """Per variant and step (by each user's first exposure): the users first shown a list
    then, and how many of them converted (by `counts`' rule). (variant, start, users,
    converted) in time order."""
    with database_errors():
        rows = await pool.fetch(
            f"""WITH per_user AS (
                    SELECT x.variant, x.user_id, min(x.first_shown_at) AS first_at,
                           bool_or(c.hit) AS hit
                    FROM experiment_exposures x
                    CROSS JOIN LATERAL (SELECT {CONVERTED} AS hit) c
                    WHERE x.experiment_id = $1
                    GROUP BY x.variant, x.user_id)
                SELECT variant,
                       date_bin(make_interval(secs => $4), first_at, 'epoch') AS at,
                       count(*) AS users, count(*) FILTER (WHERE hit) AS converted
                FROM per_user GROUP BY 1, 2 ORDER BY 2, 1""",
            experiment_id,
            list(conversion_types),
            window_hours * 3600.0,
            step_seconds,
        )
    return [(r["variant"], r["at"], int(r["users"]), int(r["converted"])) for r in rows]


async def counts(
    pool: asyncpg.Pool, experiment_id: str, conversion_types: Sequence[str], window_hours: float
) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, int]]]:
    """Per variant: users, impressions, clicks (shown items the user then converted on) and
    converted users; and impressions by index version.

    An interaction that names the list it came from (its recommendation_id) converts exactly
    the items of that list, if the experiment showed it; one that names none converts an
    item shown within the window before it. An erased user's exposures keep what was
    fixed at erasure (`converted`)."""
    with database_errors():
        rows = await pool.fetch(
            f"""SELECT x.variant, count(DISTINCT x.user_id) AS users,
                      sum(x.impressions)::bigint AS impressions,
                      count(*) FILTER (WHERE c.hit) AS clicks,
                      count(DISTINCT x.user_id) FILTER (WHERE c.hit) AS converted_users
               FROM experiment_exposures x
               CROSS JOIN LATERAL (SELECT {CONVERTED} AS hit) c
               WHERE x.experiment_id = $1
               GROUP BY x.variant""",
            experiment_id,
            list(conversion_types),
            window_hours * 3600.0,
        )
        versions = await pool.fetch(
            """SELECT variant, index_version, impressions FROM experiment_served
               WHERE experiment_id = $1 ORDER BY index_version""",
            experiment_id,
        )
    by_variant = {
        r["variant"]: {k: int(r[k]) for k in ("users", "impressions", "clicks", "converted_users")}
        for r in rows
    }
    served: dict[str, dict[str, int]] = defaultdict(dict)
    for r in versions:
        served[r["variant"]][str(r["index_version"])] = int(r["impressions"])
    return by_variant, dict(served)
