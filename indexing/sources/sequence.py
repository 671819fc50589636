"""sequence: what other users went on to after the user's latest items.

Over each user's positive interactions in time order, with n(j -> i) the times i came at
most `sequence_window` positive interactions after j, strictly later,
    next(j, i) = n(j -> i) / (sum_c n(j -> c) + SEQUENCE_SHRINK)
the share of what followed j that was i, shrunk where little followed j. Each item keeps its
`neighbours` most frequent followers, and
    score(c) = sum over the `recent_items` newest positive items j, weighted as recent.py
               weighs them, of e_j next(j, c)
The order of acts says what the sets do not: what people go on to.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from indexing import topk
from indexing.rowsums import RowSums
from indexing.sources.base import (
    Rows,
    Sequences,
    Source,
    Summed,
    Training,
    User,
    closest,
    mean_support,
)

if TYPE_CHECKING:
    from indexing.artifacts import IndexVersion

# Followers are counted with this much shrinkage: an item followed once by one item says
# less than an item followed by the same one in a hundred histories.
SEQUENCE_SHRINK = 5.0


def sequences_of(user_rows: Rows, item_rows: Rows, times: npt.NDArray[np.float64]) -> Sequences:
    order = np.lexsort((np.arange(len(user_rows)), times, user_rows))
    return Sequences(user_rows[order], item_rows[order], times[order])


def follows(sequences: Sequences, n_items: int, window: int, k: int) -> sp.csr_matrix:
    """next(j, i) (see the module's docstring), each row's `k` largest: (n_items, n_items)
    float32.

    One pass per gap of 1 to `window` positions: the work and memory grow with the
    interactions times the window, not with the catalog."""
    users, items, times = sequences.users, sequences.items, sequences.times
    counts = sp.csr_matrix((n_items, n_items), dtype=np.float32)
    for gap in range(1, min(window, len(users) - 1) + 1):
        after = (users[gap:] == users[:-gap]) & (times[gap:] > times[:-gap])
        after &= items[gap:] != items[:-gap]
        pairs = (items[:-gap][after], items[gap:][after])
        ones = np.ones(int(after.sum()), dtype=np.float32)
        counts = counts + sp.csr_matrix((ones, pairs), shape=(n_items, n_items))
    counts = sp.csr_matrix(counts)
    counts.sum_duplicates()
    counts.sort_indices()
    followed = np.asarray(counts.sum(axis=1), dtype=np.float64).ravel()
    blocks: list[sp.csr_matrix] = []
    start, indptr = 0, counts.indptr
    while start < n_items:  # a block of rows at a time, about topk.BLOCK_PAIRS entries each
        stop = int(np.searchsorted(indptr, indptr[start] + topk.BLOCK_PAIRS, side="right")) - 1
        stop = min(max(stop, start + 1), n_items)
        lo, hi = indptr[start], indptr[stop]
        row = np.repeat(np.arange(start, stop, dtype=np.int64), np.diff(indptr[start : stop + 1]))
        col = counts.indices[lo:hi].astype(np.int64)
        share = (counts.data[lo:hi] / (followed[row] + SEQUENCE_SHRINK)).astype(np.float32)
        best = topk.best_per_row(row, col, share, k, start, stop)
        blocks.append(topk.block(*best, start, stop, n_items))
        start = stop
    return topk.stacked(blocks, n_items)


class Sequence(Source):
    name = "sequence"
    cold = "steady"
    fitted_with = ("sequence_window", "neighbours")

    def fit(self, training: Training) -> dict[str, Any]:
        """Nothing follows anything where the training has no sequences."""
        n_items = training.evidence.shape[1]
        if training.sequences is None:
            return {"following": sp.csr_matrix((n_items, n_items), dtype=np.float32)}
        settings = training.settings
        window, k = settings.sequence_window, settings.neighbours
        return {"following": follows(training.sequences, n_items, window, k)}

    def scorer(self, user: User, sums: RowSums) -> Summed | None:
        model = user.collaborative
        if model is None:
            return None
        return Summed.of(sums, model.following, user.recent, user.newest)

    def support(self, user: User) -> float:
        """Of the newest items, weighted as they are weighed."""
        return mean_support(user.known[: len(user.recent)], user.newest)

    def explain(self, version: IndexVersion, row: int, liked: Rows, recent: Rows) -> str | None:
        """The recent item `row` most often followed."""
        model = version.collaborative
        found = closest(version, row, recent, model.following if model is not None else None)
        return None if found is None else f"often chosen after {version.item_titles[found]}"
