"""Public datasets as snapshots, with the held-out part their protocol names.

  ml-ratings  MovieLens (ml-latest-small layout): every rating a `rating` interaction (values
              below the API's 1..5 raised to 1); each user's newest 20% held out; held-out
              ratings of 4 and above are the positives.
  ml-views    the same split, each training rating sent as one `view` with no value: the
              implicit shape. The positives are unchanged.
  bookx       Book-Crossing as filtered by caserec (implicit history, no timestamps): per user
              a random 20% of their books held out (random.Random(7), users in sorted order,
              each user's items sorted then shuffled); training pairs are one `view` each, a
              minute apart in the shuffled order. Every held-out book is a positive.
  retail      Retailrocket e-commerce events as filtered by caserec (three kinds, hashed ids,
              no text, no timestamps): per visitor a random 20% of the products they touched
              held out, drawn as for bookx; every event on a training product is sent in that
              order, a minute apart (view as `view`, add-to-cart as `like`, transaction as
              `purchase`). Items are titled "product N" and nothing else. Every held-out
              product is a positive.
  ml-light, retail-light
              catalogs of light users with strong popularity, made from the two above: each
              user's positive items in the order first touched (MovieLens ratings of 4 and
              above, sent as `purchase`s; every Retailrocket event, of its kind) cut into
              runs of 2 to 5 items (drawn by random.Random(7)), each run a user of its own
              whose last item is held out: most users have one to three items to learn from.
Items carry their title, tags (genres, or the author), a category (the first genre) and, for
books, a description "title by author, publisher year".
"""

from __future__ import annotations

import csv
import hashlib
import random
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from common.snapshot import Snapshot
from common.text import item_labels, item_text
from embeddings.encoder import Encoder, Vectors, chunks_by_length, embed_items, item_vectors_key
from indexing.holdout import held_out

NAMES = ("ml-ratings", "ml-views", "bookx", "retail", "ml-light", "retail-light")
BOOKX_START = datetime(2004, 8, 1, tzinfo=UTC).timestamp()


@dataclass(frozen=True)
class Dataset:
    name: str
    item_ids: list[str]
    titles: list[str]
    categories: list[str | None]
    tags: list[list[str]]
    descriptions: list[str | None]
    users: list[str]  # per interaction
    items: list[str]
    kinds: list[str]
    values: list[float | None]
    times: list[float]
    positive: npt.NDArray[np.bool_]  # would be a positive if held out
    test: npt.NDArray[np.bool_] | None = None  # held out; None: each user's newest 20%

    def labels(self) -> list[str]:
        return [
            item_labels(category, tags)
            for category, tags in zip(self.categories, self.tags, strict=True)
        ]

    def texts(self) -> list[str]:
        return [
            item_text(title, description, category, tags)
            for title, description, category, tags in zip(
                self.titles, self.descriptions, self.categories, self.tags, strict=True
            )
        ]


def load(name: str, data: Path) -> Dataset:
    """One dataset by name, from the folder that holds ml-latest-small/ and book-crossing/."""
    if name == "ml-ratings":
        return movielens(data / "ml-latest-small", views=False)
    if name == "ml-views":
        return movielens(data / "ml-latest-small", views=True)
    if name == "bookx":
        return book_crossing(data / "book-crossing")
    if name == "retail":
        return retailrocket(data / "retailrocket")
    if name == "ml-light":
        return light(movielens(data / "ml-latest-small", views=False), name)
    if name == "retail-light":
        return light(retailrocket(data / "retailrocket"), name)
    raise ValueError(f"unknown dataset {name!r}; known: {', '.join(NAMES)}")


def movielens(folder: Path, views: bool) -> Dataset:
    with (folder / "movies.csv").open(newline="", encoding="utf-8") as f:
        movies = list(csv.DictReader(f))
    with (folder / "ratings.csv").open(newline="", encoding="utf-8") as f:
        ratings = list(csv.DictReader(f))
    genres = [[] if m["genres"] == "(no genres listed)" else m["genres"].split("|") for m in movies]
    stars = [max(1.0, float(r["rating"])) for r in ratings]
    return Dataset(
        name="ml-views" if views else "ml-ratings",
        item_ids=[m["movieId"] for m in movies],
        titles=[m["title"] for m in movies],
        categories=[g[0] if g else None for g in genres],
        tags=genres,
        descriptions=[None] * len(movies),
        users=[r["userId"] for r in ratings],
        items=[r["movieId"] for r in ratings],
        kinds=["view" if views else "rating"] * len(ratings),
        values=[None] * len(ratings) if views else list(stars),
        times=[float(r["timestamp"]) for r in ratings],
        positive=np.array(stars) >= 4.0,
    )


def light(whole: Dataset, name: str) -> Dataset:
    """Runs of a few items, each a user of its own (see the module docstring): every
    interaction the protocol counts as a positive, each user's items in the order they
    were first touched, cut into runs of 2 to 5 items; the last item of each run is held
    out."""
    by_user: dict[str, dict[str, list[int]]] = {}  # user -> item -> interactions, in order
    order = sorted(range(len(whole.users)), key=lambda n: (whole.times[n], n))
    for n in order:
        if whole.positive[n]:
            by_user.setdefault(whole.users[n], {}).setdefault(whole.items[n], []).append(n)
    rng = random.Random(7)
    picked: list[int] = []
    users: list[str] = []
    times: list[float] = []
    test: list[bool] = []
    for user in sorted(by_user, key=_numbers):
        mine = list(by_user[user])
        start = 0
        while len(mine) - start >= 2:
            run = mine[start : start + rng.randint(2, 5)]
            start += len(run)
            for at, item in enumerate(run):
                for n in by_user[user][item]:
                    picked.append(n)
                    users.append(f"{user}-{start}")
                    times.append(BOOKX_START + 60.0 * len(times))
                    test.append(at == len(run) - 1)
    return replace(
        whole,
        name=name,
        users=users,
        items=[whole.items[n] for n in picked],
        kinds=["purchase" if whole.kinds[n] == "rating" else whole.kinds[n] for n in picked],
        values=[None] * len(picked),
        times=times,
        positive=np.ones(len(picked), dtype=bool),
        test=np.array(test, dtype=bool),
    )


def retailrocket(folder: Path) -> Dataset:
    kinds = {"view": "view", "add_to_cart": "like", "purchase": "purchase"}
    events: dict[str, dict[str, list[str]]] = {}  # visitor -> product -> kinds, in file order
    for name, kind in kinds.items():
        with (folder / f"{name}_ecommerce.dat").open(encoding="utf-8") as f:
            next(f)
            for line in f:
                visitor, product, _ = line.split("\t")
                events.setdefault(visitor, {}).setdefault(product, []).append(kind)
    rng = random.Random(7)
    users, items, times, test, kinds_sent = [], [], [], [], []
    for visitor in sorted(events, key=int):
        mine = sorted(events[visitor], key=int)
        rng.shuffle(mine)
        held = round(0.2 * len(mine))
        n = 0
        for at, product in enumerate(mine):
            for kind in events[visitor][product]:
                users.append(visitor)
                items.append(product)
                kinds_sent.append(kind)
                times.append(BOOKX_START + 60.0 * n)
                test.append(at < held)
                n += 1
    ids = sorted({p for mine in events.values() for p in mine}, key=int)
    return Dataset(
        name="retail",
        item_ids=ids,
        titles=[f"product {i}" for i in ids],
        categories=[None] * len(ids),
        tags=[[] for _ in ids],
        descriptions=[None] * len(ids),
        users=users,
        items=items,
        kinds=kinds_sent,
        values=[None] * len(users),
        times=times,
        positive=np.ones(len(users), dtype=bool),
        test=np.array(test, dtype=bool),
    )


def book_crossing(folder: Path) -> Dataset:
    books: dict[str, tuple[str, str, str]] = {}
    with (folder / "items_info.dat").open(encoding="utf-8", errors="replace") as f:
        next(f)
        for line in f:
            fields = line.rstrip("\n").split("\t")
            if len(fields) < 6:
                continue
            # "&amp" splits a few publishers into two fields; image URLs follow.
            publisher = "&".join(p.strip() for p in fields[5:] if p and not p.startswith("http"))
            title, author, year = fields[2], fields[3], fields[4]
            books[fields[0]] = (title, author, f"{title} by {author}, {publisher} {year}")
    history: dict[str, list[str]] = {}
    with (folder / "book_history.dat").open(encoding="utf-8") as f:
        next(f)
        for line in f:
            user, item, _ = line.split("\t")
            if item in books:
                history.setdefault(user, []).append(item)
    rng = random.Random(7)
    users, items, times, test = [], [], [], []
    for user in sorted(history, key=int):
        mine = sorted(set(history[user]), key=int)
        rng.shuffle(mine)
        held = round(0.2 * len(mine))
        for n, item in enumerate(mine):
            users.append(user)
            items.append(item)
            times.append(BOOKX_START + 60.0 * n)
            test.append(n < held)
    ids = sorted(books, key=int)
    return Dataset(
        name="bookx",
        item_ids=ids,
        titles=[books[i][0] for i in ids],
        categories=[None] * len(ids),
        # A few authors run past the API's 128 characters for a tag.
        tags=[[books[i][1][:128]] if books[i][1] else [] for i in ids],
        descriptions=[books[i][2] for i in ids],
        users=users,
        items=items,
        kinds=["view"] * len(users),
        values=[None] * len(users),
        times=times,
        positive=np.ones(len(users), dtype=bool),
        test=np.array(test, dtype=bool),
    )


def embed(dataset: Dataset, encoder: Encoder, cache: Path | None) -> Vectors:
    """Item vectors, shortest texts first in chunks (as the worker does), cached by content."""
    texts, labels = dataset.texts(), dataset.labels()
    key = item_vectors_key(encoder)
    digest = hashlib.sha256("\n\0".join([key, *texts, *labels]).encode()).hexdigest()[:16]
    path = cache / f"{dataset.name.split('-')[0]}-{digest}.npy" if cache is not None else None
    if path is not None and path.is_file():
        cached: Vectors = np.load(path)
        return cached
    vectors = np.zeros((len(texts), encoder.dimension), dtype=np.float32)
    for chunk in chunks_by_length(texts):
        vectors[chunk] = embed_items(encoder, [texts[n] for n in chunk], [labels[n] for n in chunk])
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, vectors)
    return vectors


def snapshot(dataset: Dataset, vectors: Vectors) -> tuple[Snapshot, npt.NDArray[np.bool_]]:
    """The whole dataset as a snapshot, and the mask of its held-out interactions."""
    item_row = {item_id: n for n, item_id in enumerate(dataset.item_ids)}
    user_ids = sorted(set(dataset.users), key=_numbers)
    user_row = {user_id: n for n, user_id in enumerate(user_ids)}
    times = np.array(dataset.times, dtype=np.float64)
    user_rows = np.array([user_row[u] for u in dataset.users], dtype=np.int64)
    whole = Snapshot(
        as_of=datetime.fromtimestamp(float(times.max(initial=0.0)), UTC),
        item_ids=dataset.item_ids,
        titles=dataset.titles,
        categories=dataset.categories,
        published=np.full(len(dataset.item_ids), np.nan),
        item_vectors=vectors,
        user_ids=user_ids,
        user_rows=user_rows,
        item_rows=np.array([item_row[i] for i in dataset.items], dtype=np.int64),
        kinds=dataset.kinds,
        values=dataset.values,
        times=times,
    )
    test = dataset.test if dataset.test is not None else held_out(user_rows, times)
    return whole, test


def _numbers(user_id: str) -> list[int]:
    """A user id's numbers, to order "12" before "100" (and "12-3" as 12 then 3)."""
    return [int(part) for part in user_id.split("-")]
