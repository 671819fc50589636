"""Weighted sums of a few sparse rows, at the cost of their nonzeros, not of the catalog.

A user's item-item scores are sum_j w_j M[j, :] over their items j: at most a few hundred rows
of a CSR matrix with some hundreds of entries each. Forming that sum as a catalog-sized vector
(a sparse product, then `toarray`) costs O(n_items) per request in allocation, zeroing and the
top-k scan, which grows with the catalog. Here each thread keeps its dense accumulators
allocated; a sum scatters the rows' entries into one, reads the candidates it needs, and
zeroes exactly what it touched on the way out. No sort: the distinct columns come from a
scatter of positions (the last write of a column wins, so exactly one position per column
reads its own index back).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

Floats = npt.NDArray[np.float32]
Rows = npt.NDArray[np.int64]
_EMPTY = np.zeros(0, dtype=np.int64)


class RowSums:
    """Dense accumulators over `n` columns (`count` to begin with, more as they are taken),
    all zero between uses."""

    def __init__(self, n: int, count: int = 0) -> None:
        self.n = n
        self.sums = [np.zeros(n, dtype=np.float32) for _ in range(count)]
        self._slot = np.zeros(n, dtype=np.int64)
        self._touched: list[list[Rows]] = [[] for _ in range(count)]
        self._taken = 0

    def take(self) -> int:
        """An accumulator no one has taken in this use, allocated the first time one is
        needed: each source that sums rows takes its own (indexing/sources/)."""
        which = self._taken
        if which == len(self.sums):
            self.sums.append(np.zeros(self.n, dtype=np.float32))
            self._touched.append([])
        self._taken += 1
        return which

    def add(self, which: int, matrix: sp.csr_matrix, rows: Rows, weights: Floats) -> None:
        """sums[which] += sum_j weights[j] * matrix[rows[j], :]."""
        indptr = matrix.indptr
        starts = indptr[rows].astype(np.int64)
        lengths = indptr[rows + 1].astype(np.int64) - starts
        total = int(lengths.sum())
        if total == 0:
            return
        # Positions of every selected entry in matrix.data, row after row, without a loop.
        shift = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
        positions = shift + np.arange(total, dtype=np.int64)
        columns = matrix.indices[positions].astype(np.int64)
        values = matrix.data[positions] * np.repeat(weights.astype(np.float32), lengths)
        np.add.at(self.sums[which], columns, values)
        self._touched[which].append(columns)

    def columns(self, which: int) -> Rows:
        """The distinct columns sums[which] has touched since it was last cleared."""
        parts = self._touched[which]
        if not parts:
            return _EMPTY
        touched = parts[0] if len(parts) == 1 else np.concatenate(parts)
        order = np.arange(len(touched), dtype=np.int64)
        self._slot[touched] = order
        distinct: Rows = touched[self._slot[touched] == order]
        return distinct

    def top(
        self, which: int, k: int, member: Callable[[Rows], npt.NDArray[np.bool_]] | None = None
    ) -> Rows:
        """Up to `k` distinct columns with the largest sums above 0 (ties in any order),
        among those `member` keeps where it is given."""
        columns = self.columns(which)
        if member is not None:
            columns = columns[member(columns)]
        values = self.sums[which][columns]
        positive = np.flatnonzero(values > 0)
        if len(positive) > k:
            positive = positive[np.argpartition(-values[positive], k - 1)[:k]]
        return columns[positive]

    def clear(self) -> None:
        for sums, parts in zip(self.sums, self._touched, strict=True):
            for columns in parts:
                sums[columns] = 0.0
            parts.clear()
        self._taken = 0


_local = threading.local()


@contextmanager
def scratch(n: int, count: int = 0) -> Iterator[RowSums]:
    """This thread's accumulators for a catalog of `n` items (at least `count`, and as many
    as are taken), zero again on exit."""
    held: RowSums | None = getattr(_local, "sums", None)
    if held is None or held.n != n or len(held.sums) < count:
        held = _local.sums = RowSums(n, count)
    try:
        yield held
    finally:
        held.clear()
