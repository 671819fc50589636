"""From a snapshot of the catalog and interactions to a published, active index version."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from common.settings import Settings
from embeddings.encoder import Encoder
from indexing import ann, collaborative, gate, publish, tuning
from indexing.artifacts import MANIFEST, IndexVersion
from indexing.collaborative import Collaborative
from indexing.profiles import evidence, type_weights, user_decay, user_vectors
from indexing.snapshot import Snapshot, embed_missing, take
from storage import builds
from storage.blob import BlobStore

Report = Callable[[str, float], Awaitable[None]]
Activated = Callable[[int], Awaitable[None]]


def shaping_settings(settings: Settings, encoder: Encoder) -> dict[str, Any]:
    """The settings a version's content depends on; their digest is the fingerprint."""
    index = settings.index
    return {
        "encoder": encoder.name,
        "half_life_days": index.half_life_days,
        "exact_below": index.exact_below,
        "hnsw": [index.hnsw_m, index.hnsw_ef_construction, index.hnsw_ef_search],
        "interaction_weights": dict(sorted(settings.interactions.interaction_weights.items())),
        "rating_weights": list(settings.interactions.rating_weights),
        "collaborative": settings.collaborative.model_dump(),
    }


def fingerprint(shaping: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:16]


def assemble(
    snapshot: Snapshot, settings: Settings, collaborative_model: Collaborative | None = None
) -> IndexVersion:
    """Pure: the in-memory version for a snapshot (its manifest is filled in by the caller).

    The collaborative models are fitted here unless `collaborative_model` is given.
    """
    n_items, n_users = len(snapshot.item_ids), len(snapshot.user_ids)
    weights = type_weights(snapshot.kinds, snapshot.values, settings.interactions)
    half_life = settings.index.half_life_days
    users = user_vectors(
        snapshot.user_rows,
        snapshot.item_rows,
        weights * user_decay(snapshot.user_rows, snapshot.times, half_life),
        n_users,
        snapshot.item_vectors,
    )
    # All-time positive weight: the cold-start list and the trending source's stand-in
    # when no trending list is served. What is hot now is the trending lists' business.
    popularity = np.zeros(n_items, dtype=np.float32)
    np.add.at(popularity, snapshot.item_rows, np.maximum(weights, 0))

    history, latest = history_matrix(snapshot, weights), _max_per_pair(snapshot, n_items)
    if collaborative_model is None:
        strength = evidence_matrix(history, latest, settings.collaborative.half_life_days)
        collaborative_model = collaborative.fit(strength, settings.collaborative, settings.index)

    names = sorted({c for c in snapshot.categories if c is not None})
    code = {name: n for n, name in enumerate(names)}
    return IndexVersion(
        manifest={},
        item_ids=snapshot.item_ids,
        item_titles=snapshot.titles,
        item_index=ann.build(snapshot.item_vectors, settings.index),
        category_names=names,
        item_category=np.array(
            [code[c] if c is not None else -1 for c in snapshot.categories], dtype=np.int32
        ),
        popularity=popularity,
        user_ids=snapshot.user_ids,
        user_index=ann.build(users, settings.index),
        history_indptr=history.indptr.astype(np.int64),
        history_items=history.indices.astype(np.int32),
        history_weights=history.data.astype(np.float32),
        history_times=latest,
        collaborative=collaborative_model,
    )


def fit(
    snapshot: Snapshot, settings: Settings, say: tuning.Say | None = None
) -> tuple[IndexVersion, tuning.Tuned]:
    """Tune on the snapshot's own holdout, then assemble on all of it with the chosen values.

    The version's manifest holds the chosen values, so it serves the blend it chose."""
    tuned = tuning.tune(snapshot, settings, assemble, snapshot_evidence, say)
    built = assemble(snapshot, settings.model_copy(update={"collaborative": tuned.collaborative}))
    built.manifest = {"tuning": {"chosen": tuned.chosen()}}
    return built, tuned


def evidence_matrix(
    history: sp.csr_matrix, latest: npt.NDArray[np.float64], half_life_days: float
) -> sp.csr_matrix:
    """Users x items evidence (indexing/profiles.py) of the pairs in a history matrix."""
    strength = evidence(history.data, latest, history.indptr, half_life_days)
    return sp.csr_matrix((strength, history.indices, history.indptr), shape=history.shape)


def snapshot_evidence(snapshot: Snapshot, settings: Settings) -> sp.csr_matrix:
    weights = type_weights(snapshot.kinds, snapshot.values, settings.interactions)
    return evidence_matrix(
        history_matrix(snapshot, weights),
        _max_per_pair(snapshot, len(snapshot.item_ids)),
        settings.collaborative.half_life_days,
    )


def history_matrix(snapshot: Snapshot, weights: npt.NDArray[np.float32]) -> sp.csr_matrix:
    """Users x items net weight of each pair touched (a pair whose weights cancel stays, at 0)."""
    history = sp.csr_matrix(
        (weights, (snapshot.user_rows, snapshot.item_rows)),
        shape=(len(snapshot.user_ids), len(snapshot.item_ids)),
        dtype=np.float32,
    )
    history.sum_duplicates()
    history.sort_indices()
    return history


def _max_per_pair(snapshot: Snapshot, n_items: int) -> npt.NDArray[np.float64]:
    """Newest interaction time of each (user, item) pair, in the history CSR's order."""
    pair = snapshot.user_rows * n_items + snapshot.item_rows
    unique, inverse = np.unique(pair, return_inverse=True)
    newest = np.full(len(unique), -np.inf)
    np.maximum.at(newest, inverse, snapshot.times)
    return newest  # np.unique sorts by (user, item): the history CSR's order


async def unchanged_since_active(
    pool: asyncpg.Pool, snapshot_marks: dict[str, Any], shaping: str
) -> int | None:
    """The active version, if it was built from this same data with these same settings."""
    active = await builds.active_version(pool)
    if active is None:
        return None
    manifest = (await builds.get_version(pool, active))["manifest"]
    same = manifest.get("fingerprint") == shaping and all(
        manifest.get(key) == value for key, value in snapshot_marks.items()
    )
    return active if same else None


async def change_marks(pool: asyncpg.Pool) -> dict[str, Any]:
    """Cheap marks that move whenever the catalog or the interactions change."""
    row = await pool.fetchrow(
        """SELECT (SELECT coalesce(max(interaction_id), 0) FROM interactions) AS last_interaction,
                  (SELECT count(*) FROM items) AS item_rows,
                  (SELECT coalesce(extract(epoch FROM max(greatest(updated_at, deleted_at))), 0)
                   FROM items) AS items_changed"""
    )
    assert row is not None
    return {
        "last_interaction": int(row["last_interaction"]),
        "item_rows": int(row["item_rows"]),
        "items_changed": float(row["items_changed"]),
    }


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
) -> tuple[int | None, str]:
    """Embed what changed, build, upload, record and (by default) activate a version.

    Returns (version, final stage). Nothing becomes visible unless every step succeeds: the
    version is recorded only once all its files are in the store, and activated after that,
    and only if it passes the quality gate (indexing/gate.py); otherwise it is recorded as
    `rejected` and the final stage is "rejected".
    """
    shaping = shaping_settings(settings, encoder)
    digest = fingerprint(shaping)
    marks = await change_marks(pool)
    if not force:
        same = await unchanged_since_active(pool, marks, digest)
        if same is not None:
            return same, "unchanged"

    await report("embedding", 0.0)
    await embed_missing(pool, encoder, lambda f: report("embedding", 0.6 * f))
    await report("snapshot", 0.6)
    snapshot = await take(pool, encoder)
    await report("tuning", 0.65)
    built, tuned = await asyncio.to_thread(fit, snapshot, settings)
    active = await builds.active_version(pool)
    active_metrics = (await builds.get_version(pool, active))["metrics"] if active else None
    verdict = gate.judge(tuned.metrics, active_metrics, settings.index.gate_tolerance)

    version = await builds.next_version(pool)
    created = datetime.now(UTC)
    manifest: dict[str, Any] = {
        "version": version,
        "created_at": created.isoformat(),
        "data_as_of": snapshot.as_of.isoformat(),
        "data_as_of_epoch": snapshot.as_of.timestamp(),
        "items": len(snapshot.item_ids),
        "users": len(snapshot.user_ids),
        "interactions": len(snapshot.kinds),
        "encoder": {"name": encoder.name, "dimension": encoder.dimension},
        "fingerprint": digest,
        "settings": shaping,
        "item_index": ann.describe(built.item_index, settings.index),
        "user_index": ann.describe(built.user_index, settings.index),
        "tuning": {"chosen": tuned.chosen(), "search": tuned.search},
        "metrics": tuned.metrics,
        "gate": verdict,
        **marks,
    }
    await report("saving", 0.8)
    folder = settings.index.data_dir / f"{version:010d}"
    passed = bool(verdict["passed"])
    try:
        manifest["artifacts"] = await asyncio.to_thread(_save, built, folder)
        (folder / MANIFEST).write_text(json.dumps(manifest))
        await report("uploading", 0.85)
        await asyncio.to_thread(publish.upload, store, folder, manifest)
        await builds.record_version(pool, manifest, "ready" if passed else "rejected")
    except BaseException:
        # A failed attempt leaves nothing behind: the next one starts from scratch.
        await asyncio.to_thread(_discard, folder)
        raise
    if not passed:
        await retire(pool, store, settings)
        return version, "rejected"
    if activate:
        await report("activating", 0.95)
        await builds.activate(pool, version)
        if on_activated is not None:
            await on_activated(version)
    await retire(pool, store, settings)
    return version, "done"


def _discard(folder: Path) -> None:
    shutil.rmtree(folder.with_name(folder.name + ".part"), ignore_errors=True)
    shutil.rmtree(folder, ignore_errors=True)


def _save(built: IndexVersion, folder: Path) -> dict[str, dict[str, Any]]:
    partial = folder.with_name(folder.name + ".part")
    shutil.rmtree(partial, ignore_errors=True)
    artifacts = built.save(partial)
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    return artifacts


async def retire(pool: asyncpg.Pool, store: BlobStore, settings: Settings) -> list[int]:
    """Remove versions beyond the newest `keep_versions`, never the active one."""
    removed = []
    for version in await builds.versions_to_retire(pool, settings.index.keep_versions):
        if await builds.mark_retired(pool, version):
            await asyncio.to_thread(publish.remove, store, version)
            removed.append(version)
    return removed
