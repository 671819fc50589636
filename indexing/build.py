"""From a snapshot of the catalog and interactions to an index version on disk (pure: the
workers' pipeline, workers/pipeline.py, reads the snapshot and publishes the result)."""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from common.settings import Settings
from common.snapshot import Snapshot
from embeddings.encoder import Encoder, centre, item_vectors_key
from indexing import ann, fitting, ranking, tuning
from indexing.artifacts import IndexVersion
from indexing.collaborative import Collaborative
from indexing.profiles import evidence, type_weights, user_decay, user_vectors
from indexing.sources.sequence import sequences_of


def shaping_settings(settings: Settings, encoder: Encoder) -> dict[str, Any]:
    """The settings a version's content depends on; their digest is the fingerprint."""
    index = settings.index
    return {
        "encoder": item_vectors_key(encoder),
        "half_life_days": index.half_life_days,
        "exact_below": index.exact_below,
        "hnsw": [index.hnsw_m, index.hnsw_ef_construction, index.hnsw_ef_search],
        "similar_ef_search": index.similar_ef_search,
        "interaction_weights": dict(sorted(settings.interactions.interaction_weights.items())),
        "rating_weights": list(settings.interactions.rating_weights),
        "collaborative": settings.collaborative.model_dump(),
    }


def _searched(settings: Settings) -> dict[str, Any]:
    """What a version's manifest says of its searches from the start, before the rest of it
    is filled in: the build's nearest items are searched as the API will search."""
    return {"item_index": {"similar_ef_search": settings.index.similar_ef_search}}


def fingerprint(shaping: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:16]


def assemble(
    snapshot: Snapshot,
    settings: Settings,
    collaborative_model: Collaborative | None = None,
    item_index: Any = None,
    similar_users: bool = True,
) -> IndexVersion:
    """Pure: the in-memory version for a snapshot (its manifest is filled in by the caller).

    The collaborative models are fitted here unless `collaborative_model` is given, and the
    item index is built unless `item_index` (over these same item vectors) is. Only
    similar-users requests search the user index: a version that never answers them (the
    build's tuning split) keeps the user vectors in an exact index, with no graph to build.
    """
    n_items, n_users = len(snapshot.item_ids), len(snapshot.user_ids)
    weights = type_weights(snapshot.kinds, snapshot.values, settings.interactions)
    half_life = settings.index.half_life_days
    # The version's vectors are the catalog's, centred (embeddings/encoder.py, `centre`).
    vectors, mean = centre(snapshot.item_vectors)
    users = user_vectors(
        snapshot.user_rows,
        snapshot.item_rows,
        weights * user_decay(snapshot.user_rows, snapshot.times, half_life),
        n_users,
        vectors,
    )
    # All-time positive weight: the cold-start list and the trending source's stand-in
    # when no trending list is served. What is hot now is the trending lists' business.
    popularity = np.zeros(n_items, dtype=np.float32)
    np.add.at(popularity, snapshot.item_rows, np.maximum(weights, 0))

    history, latest = history_matrix(snapshot, weights), _max_per_pair(snapshot, n_items)
    if collaborative_model is None:
        strength = evidence_matrix(history, latest, settings.collaborative.half_life_days)
        positive = weights > 0
        sequences = sequences_of(
            snapshot.user_rows[positive], snapshot.item_rows[positive], snapshot.times[positive]
        )
        collaborative_model = fitting.fit(
            strength, settings.collaborative, settings.index, sequences
        )

    names = sorted({c for c in snapshot.categories if c is not None})
    code = {name: n for n, name in enumerate(names)}
    return IndexVersion(
        manifest=_searched(settings),
        item_ids=snapshot.item_ids,
        item_titles=snapshot.titles,
        item_index=item_index if item_index is not None else ann.build(vectors, settings.index),
        embedding_mean=mean,
        category_names=names,
        item_category=np.array(
            [code[c] if c is not None else -1 for c in snapshot.categories], dtype=np.int32
        ),
        popularity=popularity,
        user_ids=snapshot.user_ids,
        user_index=ann.build(users, settings.index, exact=not similar_users),
        history_indptr=history.indptr.astype(np.int64),
        history_items=history.indices.astype(np.int32),
        history_weights=history.data.astype(np.float32),
        history_times=latest,
        collaborative=collaborative_model,
    )


def fit(
    snapshot: Snapshot,
    settings: Settings,
    say: tuning.Say | None = None,
    active: dict[str, Any] | None = None,
) -> tuple[IndexVersion, tuning.Tuned]:
    """Tune on the snapshot's own holdout, then assemble on all of it with the chosen values.

    The version's manifest holds the chosen values, so it serves the blend it chose.
    `active`: the chosen values of the version serving now, which the tuning also scores
    on its holdout for the quality gate."""
    say = say or (lambda _message: None)
    # The holdout split keeps every item and its vector: one item index serves both fits.
    items = ann.build(centre(snapshot.item_vectors)[0], settings.index)
    say(f"build: item index over {items.ntotal:,} items")

    def assemble_on(
        part: Snapshot, chosen: Settings, model: Collaborative | None = None
    ) -> IndexVersion:
        shared = items if part.item_vectors is snapshot.item_vectors else None
        return assemble(part, chosen, model, item_index=shared, similar_users=part is snapshot)

    tuned = tuning.tune(snapshot, settings, assemble_on, snapshot_evidence, say, active)
    if tuned.models is None:
        say("build: tuned; fitting on all the data")
    else:
        say(
            f"build: tuned; serving its models, fitted on all but {tuned.models_lack:,} "
            "held-out interactions"
        )
    chosen = settings.model_copy(update={"collaborative": tuned.collaborative})
    built = assemble_on(snapshot, chosen, tuned.models)
    say("build: fitted")
    typical = ranking.typical(built, settings.ranking, settings.index.ranking_depth)
    built.manifest = {
        "tuning": {"chosen": tuned.chosen()},
        "typical": typical,
        "content_informative": tuned.content_informative,
    } | _searched(settings)
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


def discard(folder: Path) -> None:
    """Remove a version's folder and any partial copy of it."""
    shutil.rmtree(folder.with_name(folder.name + ".part"), ignore_errors=True)
    shutil.rmtree(folder, ignore_errors=True)


def save(built: IndexVersion, folder: Path) -> dict[str, dict[str, Any]]:
    """Write a version's artifacts into `folder` through a partial copy renamed at the end,
    so a folder under its final name is always complete. Returns the artifacts' checksums."""
    partial = folder.with_name(folder.name + ".part")
    shutil.rmtree(partial, ignore_errors=True)
    artifacts = built.save(partial)
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    return artifacts


def describe(
    version: int,
    created: datetime,
    snapshot: Snapshot,
    built: IndexVersion,
    tuned: tuning.Tuned,
    encoder: Encoder,
    settings: Settings,
) -> dict[str, Any]:
    """A version's manifest, less what its publisher adds (gate verdict, change marks,
    artifact checksums)."""
    shaping = shaping_settings(settings, encoder)
    return {
        "version": version,
        "created_at": created.isoformat(),
        "data_as_of": snapshot.as_of.isoformat(),
        "data_as_of_epoch": snapshot.as_of.timestamp(),
        "items": len(snapshot.item_ids),
        "users": len(snapshot.user_ids),
        "interactions": len(snapshot.kinds),
        "encoder": {"name": encoder.name, "dimension": encoder.dimension},
        "fingerprint": fingerprint(shaping),
        "settings": shaping,
        "typical": built.typical,
        "content_informative": built.content_informative,
        "item_index": ann.describe(built.item_index, settings.index)
        | _searched(settings)["item_index"],
        "user_index": ann.describe(built.user_index, settings.index),
        "tuning": {
            "chosen": tuned.chosen(),
            "search": tuned.search,
            # Interactions the served models were not fitted on (tuning.REFIT_ABOVE).
            "models_lack": tuned.models_lack,
        },
        "metrics": tuned.metrics,
    }
