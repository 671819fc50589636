"""Ranking on sparse data with a known right answer, as ratings and as views only.

2,000 items in 10 genres (item vectors cluster by genre); 120 users each rate 20 films of
their genre and 5 films from anywhere, so most items have one or two raters and chance
co-occurrences abound. A new user who likes 5 films of one genre must get mostly that genre.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from common.settings import load_settings
from common.snapshot import Snapshot
from indexing import holdout, ranking
from indexing.build import fit
from indexing.profiles import Profile

GENRES, PER_GENRE, USERS, DIM = 10, 200, 120, 16


def catalog_snapshot(kind: str) -> Snapshot:
    rng = np.random.default_rng(11)
    genre = np.repeat(np.arange(GENRES), PER_GENRE)
    vectors = 0.35 * rng.standard_normal((len(genre), DIM)).astype(np.float32)
    vectors[np.arange(len(genre)), genre] += 1.0
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    users, items, values, times = [], [], [], []
    for user in range(USERS):
        own = rng.choice(np.flatnonzero(genre == user % GENRES), 20, replace=False)
        noise = rng.choice(len(genre), 5, replace=False)
        # The noise is spread through each history, so the newest 20% are mostly genre films.
        order = rng.permutation(25)
        for n, item in enumerate([*own, *noise]):
            users.append(user)
            items.append(int(item))
            values.append(float(rng.integers(4, 6)) if n < 20 else float(rng.integers(1, 6)))
            times.append(1.6e9 + 3_600.0 * (user + order[n] / 100))
    return Snapshot(
        as_of=datetime.fromtimestamp(max(times), UTC),
        item_ids=[f"i{n}" for n in range(len(genre))],
        titles=[f"Film {n}" for n in range(len(genre))],
        categories=[f"genre-{g}" for g in genre],
        published=np.full(len(genre), np.nan),
        item_vectors=vectors,
        user_ids=[f"u{n}" for n in range(USERS)],
        user_rows=np.array(users, dtype=np.int64),
        item_rows=np.array(items, dtype=np.int64),
        kinds=[kind] * len(users),
        values=values if kind == "rating" else [None] * len(users),
        times=np.array(times, dtype=np.float64),
    )


@pytest.mark.parametrize("kind", ["rating", "view"])
def test_five_likes_of_a_genre_bring_mostly_that_genre(kind: str) -> None:
    snapshot = catalog_snapshot(kind)
    settings = load_settings().model_copy(
        update={"index": load_settings().index.model_copy(update={"tune_seconds": 20.0})}
    )
    version, tuned = fit(snapshot, settings)
    served = version.ranking(settings.ranking)
    genre_of = {i: c for i, c in zip(snapshot.item_ids, snapshot.categories, strict=True)}
    for wanted in range(GENRES):
        liked = [f"i{wanted * PER_GENRE + n}" for n in (3, 50, 97, 140, 188)]
        rows = [version.item_row[i] for i in liked]
        taste = version.item_vectors[rows].mean(axis=0)
        profile = Profile(
            vector=taste / np.linalg.norm(taste),
            seen=frozenset(liked),
            count=5,
            liked=tuple(liked),
            evidence=(2.0,) * 5,
        )
        ranked = ranking.recommend(version, profile, served, depth=10, cold_start_min=3)
        assert ranked.strategy == "hybrid"
        top = [genre_of[version.item_ids[r]] for r in ranked.rows[:10]]
        assert top.count(f"genre-{wanted}") >= 8, (wanted, top)
    # The build chose its values on its own holdout and says so.
    assert tuned.metrics["hybrid"]["users"] > 0 and tuned.search
    assert version.manifest["tuning"]["chosen"]["ranking"]["ease_weight"] >= 0


def test_a_view_only_catalog_gets_collaborative_sources_and_figures() -> None:
    snapshot = catalog_snapshot("view")
    settings = load_settings()
    _, truth = holdout.split(snapshot, settings)
    assert truth, "every held-out view is a positive where all events are views"
    version, tuned = fit(
        snapshot,
        settings.model_copy(
            update={"index": settings.index.model_copy(update={"tune_seconds": 0.0})}
        ),
    )
    profile = ranking.profile_of(version, "u3")
    assert len(profile.liked) == 25 and all(e > 0 for e in profile.evidence)
    excluded = ranking.excluded_rows(version, profile, (), True)
    blended = ranking.blend_for(version, profile, settings.ranking, 50, None, excluded, None)
    for source in ("collaborative", "ease", "cooccurrence", "recent"):
        assert np.any(blended.raw[source]), source
    for source in ("hybrid", "collaborative", "ease", "cooccurrence", "popular"):
        assert tuned.metrics[source]["users"] > 0
    assert tuned.metrics["hybrid"]["ndcg@10"] > tuned.metrics["popular"]["ndcg@10"]
