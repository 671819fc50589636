"""Each row's `k` best entries of an items x items matrix, a block of rows at a time: the
kernel the cosine neighbours (cooccurrence.py) and the followers (sequence.py) share.

Blocks are kept as compact CSR as soon as they are made, so the (row, column) pairs of the
whole catalog never pile up, and each block's best are found by counting before any sort.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

Floats = npt.NDArray[np.float32]
Rows = npt.NDArray[np.int64]
# Co-occurring (item, item) pairs formed at once by `cosine` and `follows`: a few hundred MB
# at most.
BLOCK_PAIRS = 20_000_000
# `_near_the_top` counts values in bins an eighth of an octave wide, from 1 down to 2**-15
# (the last bin holds everything smaller), and the rows of a long block this many at a time.
TOP_BINS = 128
TOP_ROWS = 32_768


def block(
    row: Rows, col: Rows, value: Floats, start: int, stop: int, n_items: int
) -> sp.csr_matrix:
    """Rows [start, stop) of an items x items matrix, from their entries (no duplicates).

    Each block is kept as a compact CSR (4-byte columns) as soon as it is made: the (row,
    column) pairs, 16 bytes an entry, never pile up for the whole catalog (at 1M items and
    200 neighbours they would take 4 GB, and as much again to join them)."""
    made = sp.csr_matrix(
        (value, (row - start, col)), shape=(stop - start, n_items), dtype=np.float32
    )
    made.sort_indices()
    return made


def stacked(blocks: list[sp.csr_matrix], n_items: int) -> sp.csr_matrix:
    """The blocks of `block`, in row order, as one n_items x n_items matrix."""
    if not blocks:
        return sp.csr_matrix((n_items, n_items), dtype=np.float32)
    return sp.csr_matrix(sp.vstack(blocks, format="csr"), dtype=np.float32)


def best_per_row(
    row: Rows, col: Rows, value: Floats, k: int, start: int, stop: int
) -> tuple[Rows, Rows, Floats]:
    """The `k` best entries of each row in [start, stop), for entries grouped by row with
    values in (0, 1]; ties go to the lower column where the entries come in column order."""
    # Rows with at most k entries keep them all; only the longer ones are sorted, by row,
    # best first.
    length = np.bincount(row - start, minlength=stop - start)
    long = length[row - start] > k
    if not long.any():
        return row, col, value
    lr, lc, lv = row[long], col[long], value[long]
    near = _near_the_top(lr, lv, k)
    lr, lc, lv = lr[near], lc[near], lv[near]
    # One float sort by (row, best first): values lie in (0, 1], so row + (1 - value) orders
    # rows apart and values within them; a stable sort keeps ties in column order. A
    # three-key lexsort took minutes at 10M interactions.
    order = np.argsort((lr - start) * 2.0 + (1.0 - lv.astype(np.float64)), kind="stable")
    lr, lc, lv = lr[order], lc[order], lv[order]
    top = (np.arange(len(lr)) - np.searchsorted(lr, lr, side="left")) < k
    return (
        np.concatenate([row[~long], lr[top]]),
        np.concatenate([col[~long], lc[top]]),
        np.concatenate([value[~long], lv[top]]),
    )


def _near_the_top(row: Rows, value: Floats, k: int) -> npt.NDArray[np.bool_]:
    """Which entries may be among the `k` best of their row, for entries grouped by row
    (ascending), each row longer than `k`, values in (0, 1].

    Each row's values are counted by bin, best first, before any sort: the row's k-th best
    lies in the first bin where the count reaches k, so the entries of better bins are
    among the best, those of worse bins are not, and only that bin's are in doubt. The
    bins follow the float's own bits (exponent and three bits of mantissa), so they are as
    fine for values near 0.01 as near 1, and ordered as the values are."""
    bits = np.asarray(value, dtype=np.float32).view(np.int32) >> 20
    bins = np.clip(np.int32(0x3F8) - bits, 0, TOP_BINS - 1).astype(np.int64)
    first = np.flatnonzero(np.r_[True, row[1:] != row[:-1]])  # where each row starts
    near = np.zeros(len(row), dtype=bool)
    for n in range(0, len(first), TOP_ROWS):
        lo = first[n]
        hi = first[n + TOP_ROWS] if n + TOP_ROWS < len(first) else len(row)
        rows = len(first[n : n + TOP_ROWS])
        local = np.repeat(np.arange(rows), np.diff(np.r_[first[n : n + TOP_ROWS], hi]))
        counts = np.bincount(local * TOP_BINS + bins[lo:hi], minlength=rows * TOP_BINS)
        reach = np.argmax(counts.reshape(rows, TOP_BINS).cumsum(axis=1) >= k, axis=1)
        near[lo:hi] = bins[lo:hi] <= reach[local]
    return near
