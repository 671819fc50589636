"""The jobs workers run: build a version as a pipeline of named stages, retire old versions,
and refresh the trending lists. Reads and writes go through storage/; everything computed is
indexing/'s pure logic, the same the evaluation runs.

A build's stages, each a function below with plain inputs and outputs, reporting through
the BuildContext it is given (workers/context.py):

    embed -> snapshot -> fit and tune -> precompute lists -> judge (the quality gate)
          -> save, upload and record -> rank the lists left -> activate

Nothing becomes visible unless every stage succeeds: the version is recorded only once all
its files are in the store, and activated after that, only if it passes the gate
(indexing/gate.py); otherwise it is recorded as `rejected`. A version that goes live has
its users' lists ranked first: those the precompute had no time for are ranked in parts
before it is activated, for up to `fill_seconds` (workers/lists.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from redis.asyncio import Redis

from common.errors import CacheUnavailable, DependencyError
from common.settings import Settings
from common.snapshot import Snapshot
from embeddings.encoder import Encoder, item_vectors_key
from indexing import gate, precompute, publish, trending
from indexing.artifacts import MANIFEST, IndexVersion
from indexing.build import describe, discard, fingerprint, fit, save, shaping_settings
from indexing.hybrid import Trend
from indexing.tuning import Tuned
from storage import builds, catalog, corpus, events
from storage import trending as trending_store
from storage.blob import BlobStore
from workers.context import BuildContext
from workers.embedding import embed_missing
from workers.lists import Filling, fill_part, hot_lists

log = logging.getLogger(__name__)
# A build stops ranking lists this long before its time limit: activating the version,
# retiring old ones and the task's own bookkeeping fit in what is left.
AFTER_LISTS_SECONDS = 120.0
# The stage of a build that ranks the lists left before the version goes live.
RANKING_LISTS = "ranking lists"


@dataclass(frozen=True)
class Outcome:
    """What a build ended with: its version (None: none was made) and its final stage; for a
    version it activated whose lists are not all ranked yet, that version in memory
    (`filling`), for the workers to rank the rest (workers/lists.py)."""

    version: int | None
    final: str
    filling: Filling | None = None


@dataclass(frozen=True)
class Active:
    """The version active when a build starts: its number and manifest, and the share of its
    items still live (each None where no version is active)."""

    version: int | None
    manifest: dict[str, Any] | None
    live_share: float | None


async def build_version(
    pool: asyncpg.Pool,
    store: BlobStore,
    encoder: Encoder,
    settings: Settings,
    context: BuildContext,
    *,
    force: bool = False,
    activate: bool = True,
) -> Outcome:
    """Embed what changed, build, upload, record and (by default, through the gate) activate
    a version, stage by stage (the module's docstring). Unless `force`d, nothing is built
    when the active version was built from the same data with the same settings."""
    started = time.monotonic()
    marks = await corpus.change_marks(pool)
    if not force:
        same = await _unchanged_since_active(pool, marks, settings, encoder)
        if same is not None:
            return Outcome(same, "unchanged")
    await embed(pool, encoder, settings, context)
    snapshot = await read_snapshot(pool, encoder, context)
    active = await read_active(pool)
    built, tuned = await fit_and_tune(snapshot, settings, active, context)
    trend, precomputed = await precompute_lists(pool, settings, built, context)
    verdict = judge(tuned, settings, active)
    version = await builds.next_version(pool)
    manifest: dict[str, Any] = {
        **describe(version, datetime.now(UTC), snapshot, built, tuned, encoder, settings),
        "gate": verdict,
        "precomputed": precomputed,
        **marks,
    }
    passed = bool(verdict["passed"])
    await save_and_record(pool, store, settings, built, manifest, passed, context)
    if not passed:
        await retire(pool, store, settings)
        return Outcome(version, "rejected")
    filling = None
    if activate:
        filling = Filling(version, built, trend)
        stop = started + settings.index.build_time_limit - AFTER_LISTS_SECONDS
        until = min(time.monotonic() + settings.index.fill_seconds, stop)
        await rank_lists_left(pool, store, settings, filling, context, until=until)
        await go_live(pool, version, context)
    await retire(pool, store, settings)
    left = filling is not None and len(precompute.unranked(filling.built)) > 0
    return Outcome(version, "done", filling if left else None)


async def embed(
    pool: asyncpg.Pool, encoder: Encoder, settings: Settings, context: BuildContext
) -> None:
    """Stage: embed the items whose text changed, shared with the other workers."""
    await context.report("embedding", 0.0)
    await embed_missing(
        pool, encoder, context, chunk=settings.embedding.chunk_items, span=(0.0, 0.6)
    )


async def read_snapshot(pool: asyncpg.Pool, encoder: Encoder, context: BuildContext) -> Snapshot:
    """Stage: the catalog, its vectors and the interactions, read at one instant."""
    await context.report("snapshot", 0.6)
    return await corpus.snapshot(pool, item_vectors_key(encoder), encoder.dimension)


async def read_active(pool: asyncpg.Pool) -> Active:
    """The active version: its configuration is scored on this build's holdout too, and the
    share of its items still live says whether it can still serve the catalog."""
    active = await builds.active_version(pool)
    if active is None:
        return Active(None, None, None)
    manifest = (await builds.get_version(pool, active))["manifest"]
    return Active(active, manifest, await _live_share(pool, manifest))


async def fit_and_tune(
    snapshot: Snapshot, settings: Settings, active: Active, context: BuildContext
) -> tuple[IndexVersion, Tuned]:
    """Stage: tune on the snapshot's holdout (scoring the serving configuration beside), then
    fit the version on all of it (indexing/build.py)."""
    await context.report("tuning", 0.65)
    chosen = (active.manifest or {}).get("tuning", {}).get("chosen")
    return await asyncio.to_thread(fit, snapshot, settings, log.info, chosen)


async def precompute_lists(
    pool: asyncpg.Pool, settings: Settings, built: IndexVersion, context: BuildContext
) -> tuple[Trend | None, dict[str, Any]]:
    """Stage: users' lists (the most active first) and items' nearest items, each within its
    budget, kept in `built`. The lists follow the hot list the API serves now (computed as
    the refresh job does where none is published). Returns that hot list and the figures the
    manifest keeps."""
    await context.report("precomputing", 0.75)
    started = time.monotonic()
    trend = trending.hot_scores(await hot_lists(pool, settings, context), built)
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
    return trend, {
        "users": built.lists.users,
        "of": len(built.user_ids),
        "left": len(precompute.unranked(built)),  # ranked in parts (rank_lists_left)
        "seconds": round(ranked - started, 1),
        "ranked_with": built.lists.ranked_with,
        "nearest": {
            "items": built.nearest.items,
            "of": len(built.item_ids),
            "depth": built.nearest.depth,
            "seconds": round(time.monotonic() - ranked, 1),
        },
    }


def judge(tuned: Tuned, settings: Settings, active: Active) -> dict[str, Any]:
    """Stage: the quality gate's verdict on the held-out figures (indexing/gate.py)."""
    verdict = gate.judge(tuned.per_user, settings.index.gate_tolerance, active.live_share)
    if tuned.reference:
        verdict["figures"]["reference_config"] = tuned.reference | {"version": active.version}
    return verdict


async def save_and_record(
    pool: asyncpg.Pool,
    store: BlobStore,
    settings: Settings,
    built: IndexVersion,
    manifest: dict[str, Any],
    passed: bool,
    context: BuildContext,
) -> None:
    """Stage: write the version's files, upload them and its manifest, and record it (`ready`,
    or `rejected` where it did not pass the gate). A failure leaves nothing behind: the
    next attempt starts from scratch."""
    await context.report("saving", 0.8)
    folder = settings.index.data_dir / f"{manifest['version']:010d}"
    try:
        manifest["artifacts"] = await asyncio.to_thread(save, built, folder)
        (folder / MANIFEST).write_text(json.dumps(manifest))
        await context.report("uploading", 0.85)
        await asyncio.to_thread(publish.upload, store, folder, manifest)
        await builds.record_version(pool, manifest, "ready" if passed else "rejected")
    except BaseException:
        await asyncio.to_thread(discard, folder)
        raise


async def rank_lists_left(
    pool: asyncpg.Pool,
    store: BlobStore,
    settings: Settings,
    filling: Filling,
    context: BuildContext,
    *,
    until: float,
) -> int:
    """Stage: the lists the precompute had no time for, ranked in parts (`fill_part`) until
    monotonic time `until`, before the version goes live, so that it serves every user it
    reached from a list. Returns how many users were ranked."""
    left = len(precompute.unranked(filling.built))
    if not left or time.monotonic() > until:
        return 0
    await context.report(RANKING_LISTS, 0.86)
    done = 0
    while time.monotonic() <= until:
        ranked = await fill_part(
            pool,
            store,
            settings,
            filling,
            context,
            late=lambda: time.monotonic() > until,
            by_its_build=True,
        )
        if not ranked:
            break
        done += ranked
        await context.report(RANKING_LISTS, 0.86 + 0.09 * min(1.0, done / left))
    return done


async def go_live(pool: asyncpg.Pool, version: int, context: BuildContext) -> None:
    """Stage: activate the version, and announce it: every API process serves it."""
    await context.report("activating", 0.95)
    await builds.activate(pool, version)
    await context.activated(version)


async def _live_share(pool: asyncpg.Pool, manifest: dict[str, Any]) -> float:
    """The share of a version's items that are still live: those deleted since its data
    was read are gone."""
    items = int(manifest.get("items") or 0)
    if not items:
        return 0.0
    as_of = datetime.fromisoformat(manifest["data_as_of"])
    gone = await catalog.deleted_since(pool, as_of)
    return max(0.0, 1.0 - gone / items)


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
) -> trending.TrendingLists:
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


async def popular(pool: asyncpg.Pool, redis: Redis, settings: Settings) -> trending.TrendingLists:
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
