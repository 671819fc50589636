"""The offline split: what is held out, and which held-out interactions judge a list."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from common.settings import load_settings
from common.snapshot import Snapshot
from indexing import holdout


def snapshot_of(
    users: np.ndarray, items: np.ndarray, kinds: list[str], times: np.ndarray
) -> Snapshot:
    n_items, n_users, n = int(items.max()) + 1, int(users.max()) + 1, len(users)
    return Snapshot(
        as_of=datetime(2026, 1, 1, tzinfo=UTC),
        item_ids=[f"i{k}" for k in range(n_items)],
        titles=[""] * n_items,
        categories=[None] * n_items,
        published=np.full(n_items, np.nan),
        item_vectors=np.zeros((n_items, 4), dtype=np.float32),
        user_ids=[f"u{k}" for k in range(n_users)],
        user_rows=users.astype(np.int64),
        item_rows=items.astype(np.int64),
        kinds=kinds,
        values=[None] * n,
        times=times,
    )


def test_a_held_out_positive_counts_only_on_an_item_new_to_the_user() -> None:
    rng = np.random.default_rng(4)
    n = 600
    users = rng.integers(0, 25, n)
    items = rng.integers(0, 40, n)
    kinds = rng.choice(["view", "like", "purchase"], n).tolist()
    snapshot = snapshot_of(users, items, kinds, rng.uniform(1.7e9, 1.8e9, n))
    settings = load_settings()
    test = holdout.held_out(snapshot.user_rows, snapshot.times)
    positive = holdout.positive_mask(snapshot, settings, test)
    train, truth = holdout.split(snapshot, settings, test, positive)

    trained = set(zip(users[~test].tolist(), items[~test].tolist(), strict=True))
    expected: dict[int, set[int]] = {}
    for row in np.flatnonzero(test & positive):
        if (users[row], items[row]) not in trained:
            expected.setdefault(int(users[row]), set()).add(int(items[row]))
    assert truth == expected
    # Random draws repeat pairs: some held-out positives were on items trained on.
    assert sum(map(len, truth.values())) < int((test & positive).sum())
    assert len(train.user_rows) == len(train.kinds) == int((~test).sum())
    assert train.kinds == [k for k, t in zip(kinds, test, strict=True) if not t]


def test_with_one_interaction_each_everything_is_held_out_and_judges() -> None:
    users, items = np.arange(5), np.array([3, 1, 4, 1, 5])
    snapshot = snapshot_of(users, items, ["view"] * 5, np.full(5, 1.7e9))
    train, truth = holdout.split(snapshot, load_settings())
    assert len(train.user_rows) == 0
    assert truth == {0: {3}, 1: {1}, 2: {4}, 3: {1}, 4: {5}}
