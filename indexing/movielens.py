"""MovieLens (ml-latest-small layout) as a snapshot: the evaluation's real-world catalog.

Items carry their title, their genres as tags and the first genre as category; every rating
is a `rating` interaction (values below the API's 1..5 scale are raised to 1).
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from embeddings.encoder import Encoder, Vectors
from embeddings.text import item_text
from indexing.snapshot import EMBED_CHUNK, Snapshot


@dataclass(frozen=True)
class Movies:
    item_ids: list[str]
    titles: list[str]
    genres: list[list[str]]
    users: list[str]  # per rating
    items: list[str]  # per rating
    ratings: list[float]
    times: list[float]

    @property
    def categories(self) -> list[str | None]:
        return [g[0] if g else None for g in self.genres]

    def texts(self) -> list[str]:
        return [
            item_text(title, None, category, genres)
            for title, category, genres in zip(
                self.titles, self.categories, self.genres, strict=True
            )
        ]


def read(folder: Path) -> Movies:
    with (folder / "movies.csv").open(newline="", encoding="utf-8") as f:
        movies = list(csv.DictReader(f))
    with (folder / "ratings.csv").open(newline="", encoding="utf-8") as f:
        ratings = list(csv.DictReader(f))
    return Movies(
        item_ids=[m["movieId"] for m in movies],
        titles=[m["title"] for m in movies],
        genres=[
            [] if m["genres"] == "(no genres listed)" else m["genres"].split("|") for m in movies
        ],
        users=[r["userId"] for r in ratings],
        items=[r["movieId"] for r in ratings],
        ratings=[max(1.0, float(r["rating"])) for r in ratings],
        times=[float(r["timestamp"]) for r in ratings],
    )


def embed(movies: Movies, encoder: Encoder, cache: Path | None) -> Vectors:
    """Item vectors, shortest texts first in chunks (as the worker does), cached by content."""
    texts = movies.texts()
    digest = hashlib.sha256("\n\0".join([encoder.name, *texts]).encode()).hexdigest()[:16]
    path = cache / f"movielens-{digest}.npy" if cache is not None else None
    if path is not None and path.is_file():
        cached: Vectors = np.load(path)
        return cached
    order = sorted(range(len(texts)), key=lambda n: len(texts[n]))
    vectors = np.zeros((len(texts), encoder.dimension), dtype=np.float32)
    for start in range(0, len(order), EMBED_CHUNK):
        chunk = order[start : start + EMBED_CHUNK]
        vectors[chunk] = encoder.encode([texts[n] for n in chunk])
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, vectors)
    return vectors


def snapshot(movies: Movies, vectors: Vectors) -> Snapshot:
    item_row = {item_id: n for n, item_id in enumerate(movies.item_ids)}
    user_ids = sorted(set(movies.users), key=int)
    user_row = {user_id: n for n, user_id in enumerate(user_ids)}
    times = np.array(movies.times, dtype=np.float64)
    return Snapshot(
        as_of=datetime.fromtimestamp(float(times.max(initial=0.0)), UTC),
        item_ids=movies.item_ids,
        titles=movies.titles,
        categories=movies.categories,
        published=np.full(len(movies.item_ids), np.nan),
        item_vectors=vectors,
        user_ids=user_ids,
        user_rows=np.array([user_row[u] for u in movies.users], dtype=np.int64),
        item_rows=np.array([item_row[i] for i in movies.items], dtype=np.int64),
        kinds=["rating"] * len(movies.ratings),
        values=list(movies.ratings),
        times=times,
    )
