"""The jobs workers run, end to end: embed what changed, read a snapshot, fit a version,
publish it through the quality gate, and retire old ones. Reads and writes go through
storage/; everything computed is indexing/'s pure logic, the same the evaluation runs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from redis.asyncio import Redis

from common.errors import CacheUnavailable, DependencyError
from common.settings import Settings
from embeddings.encoder import Encoder, chunks_by_length, embed_items, item_vectors_key
from indexing import gate, precompute, publish, trending
from indexing.artifacts import MANIFEST, IndexVersion
from indexing.build import describe, discard, fingerprint, fit, save, shaping_settings
from indexing.hybrid import Trend
from storage import builds, catalog, corpus, events
from storage import trending as trending_store
from storage.blob import BlobStore

log = logging.getLogger(__name__)
Report = Callable[[str, float], Awaitable[None]]
Activated = Callable[[int], Awaitable[None]]
Share = Callable[[list[str]], Awaitable[None]]  # queues item ids for any worker to embed
Filled = Callable[[int, int], Awaitable[None]]  # announces (version, part)
Published = Callable[[], Awaitable["trending.Lists | None"]]  # the hot lists the API serves


@dataclass(frozen=True)
class Outcome:
    """What a build ended with: its version (None: none was made), its final stage, and
    for a version it activated, the version in memory and the hot list its lists follow,
    for ranking the lists its build had no time for (`fill_lists`)."""

    version: int | None
    final: str
    built: IndexVersion | None = None
    trend: Trend | None = None


async def embed_missing(
    pool: asyncpg.Pool,
    encoder: Encoder,
    progress: Report,
    item_ids: list[str] | None = None,
    *,
    share: Share | None = None,
    chunk: int = 256,
) -> int:
    """Embed live items whose text changed since their stored vector (or that have none);
    `item_ids` limits the work to those items. Returns how many this process embedded.

    With `share`, more than one `chunk` of stale items is spread over every running worker:
    each piece is queued (`share` sends it), and this process works through the same pieces
    from the last one back while the others take them from the front. A piece another
    worker has stored is no longer stale when this one reaches it, so the pieces meet in the
    middle; one still in another's hands is embedded here too (the same vectors, stored
    twice), so the result never waits on a worker that may not exist or may die.
    """
    key = item_vectors_key(encoder)
    stale = await corpus.stale_items(pool, key, item_ids)
    if share is not None and len(stale.item_ids) > chunk:
        pieces = [stale.item_ids[n : n + chunk] for n in range(0, len(stale.item_ids), chunk)]
        for piece in pieces:
            await share(piece)
        done = 0
        for n, piece in enumerate(reversed(pieces)):
            done += await embed_missing(pool, encoder, _quiet, piece)
            await progress("embedding", (n + 1) / len(pieces))
        return done
    done = 0
    for chunk_rows in chunks_by_length(stale.texts):
        vectors = await asyncio.to_thread(
            embed_items,
            encoder,
            [stale.texts[n] for n in chunk_rows],
            [stale.labels[n] for n in chunk_rows],
        )
        await corpus.store_vectors(
            pool,
            key,
            [stale.item_ids[n] for n in chunk_rows],
            [stale.content_hashes[n] for n in chunk_rows],
            [v.tobytes() for v in vectors],
        )
        done += len(chunk_rows)
        await progress("embedding", done / len(stale.texts))
    return done


async def _quiet(_stage: str, _progress: float) -> None:
    return None


async def build_version(
    pool: asyncpg.Pool,
    store: BlobStore,
    encoder: Encoder,
    settings: Settings,
    report: Report,
    *,
    force: bool = False,
    activate: bool = True,
    on_activated: Activated | None = None,
    share: Share | None = None,
    published: Published | None = None,
) -> Outcome:
    """Embed what changed, build, upload, record and (by default) activate a version.

    The lists it ranks ahead follow the hot list `published` reads (the one the API serves
    now, which the refresh job keeps); without one, the build computes it as that job does.
    Nothing becomes visible unless every step succeeds: the
    version is recorded only once all its files are in the store, and activated after that,
    and only if it passes the quality gate (indexing/gate.py); otherwise it is recorded as
    `rejected` and the final stage is "rejected".
    """
    marks = await corpus.change_marks(pool)
    if not force:
        same = await _unchanged_since_active(pool, marks, settings, encoder)
        if same is not None:
            return Outcome(same, "unchanged")

    await report("embedding", 0.0)
    await embed_missing(
        pool,
        encoder,
        lambda stage, f: report(stage, 0.6 * f),
        share=share,
        chunk=settings.embedding.chunk_items,
    )
    await report("snapshot", 0.6)
    snapshot = await corpus.snapshot(pool, item_vectors_key(encoder), encoder.dimension)
    # The serving version's configuration is scored on this build's holdout too, and the
    # share of its items still live says whether it can still serve the catalog.
    active = await builds.active_version(pool)
    active_manifest = (await builds.get_version(pool, active))["manifest"] if active else None
    live_share = await _live_share(pool, active_manifest) if active_manifest is not None else None
    chosen = (active_manifest or {}).get("tuning", {}).get("chosen")
    await report("tuning", 0.65)
    built, tuned = await asyncio.to_thread(fit, snapshot, settings, log.info, chosen)
    await report("precomputing", 0.75)
    started = time.monotonic()
    hot = await hot_lists(pool, settings, published)
    trend = trending.hot_scores(hot, built)
    built.lists = await asyncio.to_thread(
        precompute.rank_users,
        built,
        settings,
        # The budget holds the trending lists the rankings follow where none are published
        # (45 s at 10M interactions in the window): users are ranked in what is left of it.
        seconds=max(0.0, settings.index.precompute_seconds - (time.monotonic() - started)),
        threads=os.cpu_count() or 1,
        say=log.info,
        trending=trend,
    )
    ranked = time.monotonic()
    built.nearest = await asyncio.to_thread(
        precompute.nearest_items,
        built,
        settings,
        seconds=settings.index.similar_seconds,
        say=log.info,
    )
    precomputed = {
        "users": built.lists.users,
        "of": len(built.user_ids),
        "left": len(precompute.unranked(built)),  # ranked once the version is live, in parts
        "seconds": round(ranked - started, 1),
        "ranked_with": built.lists.ranked_with,
        "nearest": {
            "items": built.nearest.items,
            "of": len(built.item_ids),
            "depth": built.nearest.depth,
            "seconds": round(time.monotonic() - ranked, 1),
        },
    }
    verdict = gate.judge(tuned.per_user, settings.index.gate_tolerance, live_share)
    if tuned.reference:
        verdict["figures"]["reference_config"] = tuned.reference | {"version": active}

    version = await builds.next_version(pool)
    manifest: dict[str, Any] = {
        **describe(version, datetime.now(UTC), snapshot, built, tuned, encoder, settings),
        "gate": verdict,
        "precomputed": precomputed,
        **marks,
    }
    await report("saving", 0.8)
    folder = settings.index.data_dir / f"{version:010d}"
    passed = bool(verdict["passed"])
    try:
        manifest["artifacts"] = await asyncio.to_thread(save, built, folder)
        (folder / MANIFEST).write_text(json.dumps(manifest))
        await report("uploading", 0.85)
        await asyncio.to_thread(publish.upload, store, folder, manifest)
        await builds.record_version(pool, manifest, "ready" if passed else "rejected")
    except BaseException:
        # A failed attempt leaves nothing behind: the next one starts from scratch.
        await asyncio.to_thread(discard, folder)
        raise
    if not passed:
        await retire(pool, store, settings)
        return Outcome(version, "rejected")
    if activate:
        await report("activating", 0.95)
        await builds.activate(pool, version)
        if on_activated is not None:
            await on_activated(version)
    await retire(pool, store, settings)
    return Outcome(version, "done", built if activate else None, trend)


async def _live_share(pool: asyncpg.Pool, manifest: dict[str, Any]) -> float:
    """The share of a version's items that are still live: those deleted since its data
    was read are gone."""
    items = int(manifest.get("items") or 0)
    if not items:
        return 0.0
    as_of = datetime.fromisoformat(manifest["data_as_of"])
    gone = await catalog.deleted_since(pool, as_of)
    return max(0.0, 1.0 - gone / items)


async def fill_part(
    pool: asyncpg.Pool,
    store: BlobStore,
    settings: Settings,
    outcome: Outcome,
    announce: Filled,
    *,
    late: Callable[[], bool] = lambda: False,
) -> int:
    """Rank the next `fill_part_users` of the users whose lists the version's build had no
    time for, the most active first, now that the version is live (indexing/precompute.py):
    the part is uploaded beside the version's files, recorded, then announced, and every API
    process serving the version folds it in. `late` is asked before each batch of users, and
    the part holds those ranked until it says yes. Returns how many users the part holds:
    0 when none are left, or the version is no longer active, or another build is asked for
    (its version would take this one's place), or another process is ranking a part of it
    now, or `late` said yes at once."""
    built, number = outcome.built, outcome.version
    if built is None or number is None or built.lists is None:
        return 0
    if precompute.ranked_with(built, settings) != built.lists.ranked_with:
        log.warning("version %d: its lists were ranked with other settings", number)
        return 0
    async with builds.fill_claim(pool, number) as claimed:
        if not claimed or not await builds.still_filling(pool, number):
            return 0
        await _read_parts(pool, store, settings, built, number)  # another process's too
        users = precompute.unranked(built)[: settings.index.fill_part_users]
        if not len(users):
            return 0
        ranked = await asyncio.to_thread(
            precompute.rank_part,
            built,
            settings,
            users,
            threads=os.cpu_count() or 1,
            trending=outcome.trend,
            late=late,
        )
        if not len(ranked.users):
            return 0
        part = await builds.next_lists_part(pool, number)
        name = publish.lists_part_name(part)
        path = settings.index.data_dir / f"{number:010d}" / name
        saved = await asyncio.to_thread(ranked.save, path)
        await asyncio.to_thread(publish.upload_part, store, number, path)
        record = {
            "part": part,
            "name": name,
            **saved,
            "users": len(ranked.users),
            "ranked_with": built.lists.ranked_with,
        }
        await builds.record_lists_part(pool, number, record)
        built.lists = built.lists.with_part(ranked)  # the next part goes on from these users
        built.parts_read.add(part)
    try:
        await announce(number, part)
    except CacheUnavailable as exc:  # the API processes find it by their poll
        log.warning("could not announce part %d of version %d's lists: %s", part, number, exc)
    log.info("ranked part %d of version %d's lists: %d users", part, number, len(ranked.users))
    return len(ranked.users)


async def _read_parts(
    pool: asyncpg.Pool, store: BlobStore, settings: Settings, built: IndexVersion, number: int
) -> None:
    """Fold the recorded parts of version `number`'s lists that this copy of it (`built`)
    has not read in; the users of a part that cannot be read are ranked again."""
    records = await builds.lists_parts(pool, number)
    data_dir = settings.index.data_dir
    unreadable = await asyncio.to_thread(
        publish.read_parts, store, built, number, records, data_dir
    )
    for part in unreadable:
        log.warning("version %d: part %d cannot be read; its users are ranked again", number, part)
        built.parts_read.add(part)


async def fill_lists(
    pool: asyncpg.Pool,
    store: BlobStore,
    settings: Settings,
    outcome: Outcome,
    announce: Filled,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Every part `fill_part` ranks, one after another, for up to `fill_seconds` (by
    `clock`, asked before each batch of users): in one process, as the bench does; a worker
    ranks each part as a task of its own (workers/tasks.py), so that other tasks run in
    between. Returns how many users it ranked."""
    deadline = clock() + settings.index.fill_seconds
    done = 0
    while clock() <= deadline:
        ranked = await fill_part(
            pool, store, settings, outcome, announce, late=lambda: clock() > deadline
        )
        if not ranked:
            break
        done += ranked
    return done


async def resume(
    pool: asyncpg.Pool, store: BlobStore, redis: Redis, settings: Settings, number: int
) -> Outcome | None:
    """Version `number` in memory, with every recorded part of its lists folded in, to rank
    the rest (`fill_part`) in a process that does not hold it from its build; None when no
    user is left, or its build did not count them (an older release). The lists go on with
    the hot list published now (or computed, if none is)."""
    manifest = (await builds.get_version(pool, number))["manifest"]
    left = int(manifest.get("precomputed", {}).get("left") or 0)
    parts = await builds.lists_parts(pool, number)
    if sum(int(p["users"]) for p in parts) >= left or not await builds.still_filling(pool, number):
        return None
    data_dir = settings.index.data_dir
    folder, manifest = await asyncio.to_thread(publish.download, store, number, data_dir)
    built = await asyncio.to_thread(IndexVersion.load, folder, manifest)
    if built.lists is None:
        return None
    await _read_parts(pool, store, settings, built, number)
    hot = await hot_lists(pool, settings, lambda: published_lists(redis, settings))
    return Outcome(number, "done", built, trending.hot_scores(hot, built))


async def published_lists(redis: Redis, settings: Settings) -> trending.Lists | None:
    """The default window's trending lists as published for the API (None: none are, or
    Redis cannot say)."""
    try:
        found = await trending_store.load_lists(redis, settings.index.trending_window_hours)
    except CacheUnavailable as exc:
        log.warning("could not read the published trending lists: %s", exc)
        return None
    return found[1] if found is not None else None


async def hot_lists(
    pool: asyncpg.Pool, settings: Settings, published: Published | None
) -> trending.Lists:
    """The default window's trending lists: those `published` reads, or else computed from
    the window's interactions as the refresh job computes them."""
    found = await published() if published is not None else None
    if found is not None:
        return found
    hours = settings.index.trending_window_hours
    window = await trending_store.window_rows(pool, hours)
    return await asyncio.to_thread(trending.all_lists, window, settings, hours)


async def _unchanged_since_active(
    pool: asyncpg.Pool, marks: dict[str, Any], settings: Settings, encoder: Encoder
) -> int | None:
    """The active version, if it was built from this same data with these same settings."""
    active = await builds.active_version(pool)
    if active is None:
        return None
    manifest = (await builds.get_version(pool, active))["manifest"]
    same = manifest.get("fingerprint") == fingerprint(shaping_settings(settings, encoder)) and all(
        manifest.get(key) == value for key, value in marks.items()
    )
    return active if same else None


async def retire(pool: asyncpg.Pool, store: BlobStore, settings: Settings) -> list[int]:
    """Remove versions beyond the newest `keep_versions`, never the active one."""
    removed = []
    for version in await builds.versions_to_retire(pool, settings.index.keep_versions):
        if await builds.mark_retired(pool, version):
            await asyncio.to_thread(publish.remove, store, version)
            removed.append(version)
    return removed


async def refresh_trending(
    pool: asyncpg.Pool, redis: Redis, settings: Settings, hours: int
) -> trending.Lists:
    """Every trending list of one window, computed from its interactions, with the
    all-history popular lists (`popular_lists`), published, and announced: each API
    process replaces the lists it holds."""
    rows = await trending_store.window_rows(pool, hours)
    lists = await asyncio.to_thread(trending.all_lists, rows, settings, hours)
    lists |= await popular(pool, redis, settings)
    generation = time.time_ns() // 1_000_000
    await trending_store.publish_lists(redis, lists, hours, generation)
    await events.publish(
        redis, settings.event_namespace, "trending_changed", hours=hours, generation=generation
    )
    return lists


# All of history moves slowly: changes recompute the popular lists at most this often (a
# pass over every interaction: about 8 s at 10M), unless most of the items they name are
# gone (a catalog replaced), which recomputes them at once.
POPULAR_SECONDS = 600.0
# The share of the stored lists' items that must still be live for them to wait.
POPULAR_LIVE = 0.5


async def popular(pool: asyncpg.Pool, redis: Redis, settings: Settings) -> trending.Lists:
    """Live items by all of their history (storage/trending.py), what a list that comes out
    short is filled from: the stored lists while nothing changed, or while they are full,
    younger than POPULAR_SECONDS and most of their items live; else computed again. Where they
    cannot be computed (PostgreSQL slow or down), the stored ones, or none: the trending
    lists are published all the same."""
    weights = settings.interactions.model_dump(mode="json")
    try:
        stored = await trending_store.load_popular(redis)
    except CacheUnavailable:
        stored = None
    try:
        marks = await corpus.change_marks(pool)
        if stored is not None:
            computed, lists = stored
            ids = [item_id for item_id, _ in lists.get(("popular", None), [])]
            if computed["weights"] == weights and (
                computed["marks"] == marks
                or (
                    # A list shorter than TOP named every live item: a new one joins now.
                    len(ids) == trending.TOP
                    and time.time() - computed["at"] < POPULAR_SECONDS
                    and await catalog.live_share(pool, ids) >= POPULAR_LIVE
                )
            ):
                return lists
        lists = await trending_store.popular_lists(pool, settings.interactions, trending.TOP)
    except DependencyError as exc:
        log.warning("could not compute the popular lists: %s", exc)
        return stored[1] if stored is not None else {}
    with contextlib.suppress(CacheUnavailable):
        await trending_store.store_popular(
            redis, lists, {"marks": marks, "at": time.time(), "weights": weights}
        )
    return lists
