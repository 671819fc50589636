"""What follows what (indexing/sources/sequence.py), against counts made by hand."""

from __future__ import annotations

import numpy as np
import pytest

from indexing import topk
from indexing.sources import sequence
from indexing.sources.base import Sequences


def sequences(*histories: list[tuple[int, float]]) -> Sequences:
    """Users' (item, time) acts, user by user."""
    users, items, times = [], [], []
    for user, acts in enumerate(histories):
        for item, at in acts:
            users.append(user)
            items.append(item)
            times.append(at)
    return sequence.sequences_of(
        np.array(users, dtype=np.int64), np.array(items, dtype=np.int64), np.array(times)
    )


def test_what_follows_counts_later_acts_within_the_window_shrunk() -> None:
    shrink = sequence.SEQUENCE_SHRINK
    # 0 then 1 then 2; 0 then 1; 0 and 2 at the same moment, so neither follows the other;
    # the last user's acts arrive out of time order.
    seen = sequences(
        [(0, 1.0), (1, 2.0), (2, 3.0)],
        [(0, 1.0), (1, 2.0)],
        [(0, 5.0), (2, 5.0)],
        [(1, 9.0), (0, 8.0)],
    )
    one = sequence.follows(seen, 3, window=1, k=3).toarray()
    assert one[0, 1] == pytest.approx(3 / (3 + shrink))
    assert one[1, 2] == pytest.approx(1 / (1 + shrink))
    assert one[0, 2] == 0.0 and one[1, 0] == 0.0 and one[2].sum() == 0.0
    two = sequence.follows(seen, 3, window=2, k=3).toarray()
    assert two[0, 2] == pytest.approx(1 / (4 + shrink))
    assert two[0, 1] == pytest.approx(3 / (4 + shrink))


def test_each_item_keeps_its_k_most_frequent_followers() -> None:
    # Item 0 is followed by item f in f of the histories.
    histories = [[(0, 0.0), (f, 1.0)] for f in range(1, 6) for _ in range(f)]
    kept = sequence.follows(sequences(*histories), 6, window=1, k=2).toarray()
    assert np.flatnonzero(kept[0]).tolist() == [4, 5]
    assert kept[0, 5] > kept[0, 4]


def test_followers_come_out_alike_however_the_rows_are_blocked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(4)
    histories = [
        [(int(i), float(t)) for t, i in enumerate(rng.integers(0, 30, 12))] for _ in range(40)
    ]
    seen = sequences(*histories)
    whole = sequence.follows(seen, 30, window=3, k=4)
    monkeypatch.setattr(topk, "BLOCK_PAIRS", 7)  # a few rows a block
    blocked = sequence.follows(seen, 30, window=3, k=4)
    assert whole.nnz > 30 * 2
    assert (whole != blocked).nnz == 0
    assert blocked.indices.dtype == np.int32
