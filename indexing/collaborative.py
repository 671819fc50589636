"""Collaborative models fitted at build time: implicit ALS, EASE, shrunk item-item cosine
and what follows what.

All three learn from every positive interaction, whatever its type. The evidence of a
(user, item) pair is e = w * 0.5 ** (age / half_life) when its net weight w is above 0
(indexing/profiles.py, `evidence`; no decay with half_life 0): a view, two views, a purchase,
a rating of 4 all count, more the heavier, the more repeated and the more recent. X is the
users x items matrix of that evidence.

ALS: Hu, Koren and Volinsky, "Collaborative Filtering for Implicit Feedback Datasets"
(ICDM 2008), fitted with the `implicit` package on confidences c = 1 + alpha * e. Item
factors Y (n_items x f) are served from a FAISS inner-product index; a user's factors are
solved from their current positive items, so a user who acted a moment ago is scored with
their current history, not the one the build saw:
    x_u = (Y^T Y + reg I + sum_{i in X_u} (c_i - 1) y_i y_i^T)^-1  sum_{i in X_u} c_i y_i

EASE: Steck, "Embarrassingly Shallow Autoencoders for Sparse Data" (WWW 2019), on the
weighted X:
    P = (X^T X + lambda I)^-1,  B = I - P diag(1 / diag(P)),  score(u) = X_u B
fitted over the `ease_max_items` items with the most positive users (the dense inverse is
n^2 memory and n^3 time); beyond them EASE has no opinion and the other sources speak. Each
row of B keeps its `ease_neighbours` weights largest in magnitude (the negative ones say
"explained away", and dropping them costs more than dropping small positive ones), so
serving is a sparse row sum.

Cosine with shrinkage (Sarwar et al., WWW 2001; shrinkage after Bell and Koren, 2007), over
the item columns of X:
    sim(i, j) = X_i . X_j / (|X_i| |X_j| + shrink)
so two co-occurrences cannot outrank two hundred. Each item keeps its `neighbours` most
similar items; the co-occurrence source scores X_u S, the recent source the same over the
newest positive items.

What follows what, over each user's positive interactions in time order: with n(j -> i) the
times i came at most `sequence_window` positive interactions after j, strictly later,
    next(j, i) = n(j -> i) / (sum_c n(j -> c) + SEQUENCE_SHRINK)
the share of what followed j that was i, shrunk where little followed j. Each item keeps its
`neighbours` most frequent followers; the sequence source scores the newest positive items'
rows. The order of acts says what the sets do not: what people go on to.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.linalg
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from common.settings import CollaborativeSettings, IndexSettings
from indexing import ann
from indexing.rowsums import RowSums

Floats = npt.NDArray[np.float32]
Rows = npt.NDArray[np.int64]


@dataclass
class Collaborative:
    """What a version serves of the collaborative models."""

    factor_index: Any  # FAISS inner-product index over the ALS item factors Y, (n_items, f)
    neighbours: sp.csr_matrix  # (n_items, n_items) float32, top-k shrunk cosine per row
    ease: sp.csr_matrix  # (n_items, n_items) float32, top-k EASE weights per row
    following: sp.csr_matrix  # (n_items, n_items) float32, top-k next(j, i) per row j
    regularization: float
    alpha: float
    half_life_days: float = 0.0  # of the evidence (indexing/profiles.py); 0: no decay
    # The item-item models and row sums count each positive pair as 1 (`item_evidence`).
    binary: bool = False
    # How long each source's model took to fit, by source name (the build's tuning plans
    # its refits by it); empty for a model read from disk.
    fit_seconds: dict[str, float] = field(default_factory=dict)
    item_factors: Floats = field(init=False)  # a view into factor_index's storage
    gram: npt.NDArray[np.float64] = field(init=False)  # Y^T Y, (f, f)
    in_ease: npt.NDArray[np.bool_] = field(init=False)  # items with EASE weights, (n_items,)

    def __post_init__(self) -> None:
        self.item_factors = ann.vectors_of(self.factor_index)
        y = self.item_factors.astype(np.float64)
        self.gram = y.T @ y
        self.in_ease = np.diff(self.ease.indptr) > 0

    def user_factors(self, rows: Rows, evidence: Floats | None = None) -> Floats:
        """A user's ALS factors from their positive items' rows and evidence: shape (f,)."""
        f = self.item_factors.shape[1]
        if len(rows) == 0:
            return np.zeros(f, dtype=np.float32)
        if evidence is None:
            evidence = np.ones(len(rows), dtype=np.float32)
        confidence = 1.0 + self.alpha * evidence.astype(np.float64)
        y = self.item_factors[rows].astype(np.float64)
        a = self.gram + self.regularization * np.eye(f) + (y.T * (confidence - 1.0)) @ y
        b = confidence @ y
        return np.linalg.solve(a, b).astype(np.float32)

    def item_evidence(self, evidence: Floats) -> Floats:
        """A user's row of the X the item-item models learned from: their evidence, or 1
        for each positive item."""
        return np.ones_like(evidence) if self.binary else evidence

    def neighbour_scores(self, sums: RowSums, which: int, rows: Rows, weights: Floats) -> None:
        """sums[which] += sum over the given items of weight * their cosine neighbour row."""
        sums.add(which, self.neighbours, rows, weights)

    def ease_scores(self, sums: RowSums, which: int, rows: Rows, evidence: Floats) -> None:
        """sums[which] += X_u B for a user whose positive items are `rows`."""
        sums.add(which, self.ease, rows, evidence)

    def item_item_scores(self, sums: RowSums, which: int, rows: Rows, weights: Floats) -> None:
        """sums[which] += sum of weight * the item's EASE row, or its cosine row where EASE
        does not cover the item (the recent source)."""
        covered = self.in_ease[rows]
        sums.add(which, self.ease, rows[covered], weights[covered])
        if not covered.all():
            sums.add(which, self.neighbours, rows[~covered], weights[~covered])

    def following_scores(self, sums: RowSums, which: int, rows: Rows, weights: Floats) -> None:
        """sums[which] += sum over the given items of weight * what follows them."""
        sums.add(which, self.following, rows, weights)


def positive_part(evidence: sp.csr_matrix) -> sp.csr_matrix:
    """X: the pairs whose evidence is above 0, with their evidence."""
    positive = sp.csr_matrix(evidence.multiply(evidence > 0), dtype=np.float32)
    positive.eliminate_zeros()
    return positive


def item_part(evidence: sp.csr_matrix, settings: CollaborativeSettings) -> sp.csr_matrix:
    """The X the item-item models learn from: `positive_part`, each pair 1 where
    `item_evidence` is binary."""
    x = positive_part(evidence)
    if settings.item_evidence == "binary":
        x.data[:] = 1.0
    return x


def fit(
    evidence: sp.csr_matrix,
    settings: CollaborativeSettings,
    index: IndexSettings,
    sequences: Sequences | None = None,
) -> Collaborative:
    """Fit ALS, EASE and the cosine neighbours on a users x items evidence matrix, and what
    follows what on `sequences` (`sequences_of`; none: nothing follows anything)."""
    x = positive_part(evidence)
    items = item_part(evidence, settings)
    n_items = x.shape[1]
    seconds: dict[str, float] = {}

    def timed(source: str, make: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        made = make()
        seconds[source] = time.perf_counter() - started
        return made

    return Collaborative(
        factor_index=timed("collaborative", lambda: ann.build(als(x, settings), index)),
        neighbours=timed(
            "cooccurrence", lambda: cosine(items, settings.neighbours, settings.shrinkage)
        ),
        ease=timed(
            "ease",
            lambda: ease(
                items, settings.ease_lambda, settings.ease_max_items, settings.ease_neighbours
            ),
        ),
        following=timed(
            "sequence",
            lambda: (
                follows(sequences, n_items, settings.sequence_window, settings.neighbours)
                if sequences is not None
                else sp.csr_matrix((n_items, n_items), dtype=np.float32)
            ),
        ),
        regularization=settings.regularization,
        alpha=settings.alpha,
        half_life_days=settings.half_life_days,
        binary=settings.item_evidence == "binary",
        fit_seconds=seconds,
    )


def refit(
    model: Collaborative,
    source: str,
    evidence: sp.csr_matrix,
    settings: CollaborativeSettings,
    index: IndexSettings,
) -> Collaborative:
    """`model` with the part behind `source` (ease, cooccurrence or collaborative) refitted
    on `evidence` under `settings`: the build's tuning tries one setting at a time."""
    half_life = settings.half_life_days
    binary = settings.item_evidence == "binary"
    if source == "ease":
        weights = ease(
            item_part(evidence, settings),
            settings.ease_lambda,
            settings.ease_max_items,
            settings.ease_neighbours,
        )
        return replace(model, ease=weights, half_life_days=half_life, binary=binary)
    if source == "cooccurrence":
        similar = cosine(item_part(evidence, settings), settings.neighbours, settings.shrinkage)
        return replace(model, neighbours=similar, half_life_days=half_life, binary=binary)
    factors = ann.build(als(positive_part(evidence), settings), index)
    return replace(
        model,
        factor_index=factors,
        regularization=settings.regularization,
        alpha=settings.alpha,
        half_life_days=half_life,
    )


def als(evidence: sp.csr_matrix, settings: CollaborativeSettings) -> Floats:
    """Item factors (n_items, f) fitted on confidences 1 + alpha * evidence."""
    n_users, n_items = evidence.shape
    positive = positive_part(evidence)
    if positive.nnz == 0 or n_users < 2:
        return np.zeros((n_items, settings.factors), dtype=np.float32)
    from implicit.cpu.als import AlternatingLeastSquares

    confidence = positive.copy()
    confidence.data = 1.0 + settings.alpha * confidence.data
    # implicit warns (and runs slower) when BLAS runs threads inside its own threads.
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(
            factors=settings.factors,
            regularization=settings.regularization,
            alpha=1.0,  # the confidences above already carry alpha
            iterations=settings.iterations,
            random_state=settings.seed,
        )
        model.fit(confidence, show_progress=False)
    return np.ascontiguousarray(model.item_factors, dtype=np.float32)


def cosine(x: sp.csr_matrix, k: int, shrink: float) -> sp.csr_matrix:
    """Top-`k` shrunk cosine neighbours of each item (no item is its own neighbour).

    Only pairs that share a user have a similarity above 0, so the co-occurrence counts
    X_i . X_j are formed as a sparse product, a block of items at a time (blocks sized by
    their co-occurrences, not the catalog), and each row keeps its `k` best by one sort
    of the block's entries: the work grows with the co-occurring pairs, not n_items^2.
    """
    n_items = x.shape[1]
    by_item = sp.csr_matrix(x.T, dtype=np.float32)
    norms = np.sqrt(np.asarray(by_item.multiply(by_item).sum(axis=1), dtype=np.float32).ravel())
    transposed = sp.csr_matrix(by_item.T)
    # An upper bound of each item's co-occurring pairs: sum over its users of their lengths.
    user_lengths = np.diff(transposed.indptr).astype(np.float64)
    per_item = sp.csr_matrix(
        (user_lengths[by_item.indices], by_item.indices, by_item.indptr), shape=by_item.shape
    ).sum(axis=1)
    bounds = np.cumsum(np.asarray(per_item, dtype=np.float64).ravel())
    blocks: list[sp.csr_matrix] = []
    start = 0
    while start < n_items:
        # Up to about BLOCK_PAIRS co-occurrences per block (at least one item).
        limit = (bounds[start - 1] if start else 0.0) + BLOCK_PAIRS
        stop = max(start + 1, int(np.searchsorted(bounds, limit, side="right")))
        stop = min(stop, n_items)
        counts = sp.csr_matrix(by_item[start:stop] @ transposed)
        row = np.repeat(np.arange(start, stop, dtype=np.int64), np.diff(counts.indptr))
        col = counts.indices.astype(np.int64)
        sims = counts.data / (norms[row] * norms[col] + shrink + 1e-9)
        keep = (row != col) & (sims > 0)
        row, col, sims = row[keep], col[keep], sims[keep].astype(np.float32)
        blocks.append(_block(*_best_per_row(row, col, sims, k, start, stop), start, stop, n_items))
        start = stop
    return _stacked(blocks, n_items)


# Co-occurring (item, item) pairs formed at once by `cosine` and `follows`: a few hundred MB
# at most.
BLOCK_PAIRS = 20_000_000


def _block(
    row: Rows, col: Rows, value: Floats, start: int, stop: int, n_items: int
) -> sp.csr_matrix:
    """Rows [start, stop) of an items x items matrix, from their entries (no duplicates).

    Each block is kept as a compact CSR (4-byte columns) as soon as it is made: the (row,
    column) pairs, 16 bytes an entry, never pile up for the whole catalog (at 1M items and
    200 neighbours they would take 4 GB, and as much again to join them)."""
    block = sp.csr_matrix(
        (value, (row - start, col)), shape=(stop - start, n_items), dtype=np.float32
    )
    block.sort_indices()
    return block


def _stacked(blocks: list[sp.csr_matrix], n_items: int) -> sp.csr_matrix:
    """The blocks of `_block`, in row order, as one n_items x n_items matrix."""
    if not blocks:
        return sp.csr_matrix((n_items, n_items), dtype=np.float32)
    return sp.csr_matrix(sp.vstack(blocks, format="csr"), dtype=np.float32)


def _best_per_row(
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


# `_near_the_top` counts values in bins an eighth of an octave wide, from 1 down to 2**-15
# (the last bin holds everything smaller), and the rows of a long block this many at a time.
TOP_BINS = 128
TOP_ROWS = 32_768


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


# Followers are counted with this much shrinkage: an item followed once by one item says
# less than an item followed by the same one in a hundred histories.
SEQUENCE_SHRINK = 5.0


@dataclass(frozen=True)
class Sequences:
    """Positive interactions side by side, sorted by user, then time (ties as given)."""

    users: Rows
    items: Rows
    times: npt.NDArray[np.float64]


def sequences_of(user_rows: Rows, item_rows: Rows, times: npt.NDArray[np.float64]) -> Sequences:
    order = np.lexsort((np.arange(len(user_rows)), times, user_rows))
    return Sequences(user_rows[order], item_rows[order], times[order])


def follows(sequences: Sequences, n_items: int, window: int, k: int) -> sp.csr_matrix:
    """next(j, i) (see the module's docstring), each row's `k` largest.

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
    while start < n_items:  # a block of rows at a time, about BLOCK_PAIRS entries each
        stop = int(np.searchsorted(indptr, indptr[start] + BLOCK_PAIRS, side="right")) - 1
        stop = min(max(stop, start + 1), n_items)
        lo, hi = indptr[start], indptr[stop]
        row = np.repeat(np.arange(start, stop, dtype=np.int64), np.diff(indptr[start : stop + 1]))
        col = counts.indices[lo:hi].astype(np.int64)
        share = (counts.data[lo:hi] / (followed[row] + SEQUENCE_SHRINK)).astype(np.float32)
        blocks.append(_block(*_best_per_row(row, col, share, k, start, stop), start, stop, n_items))
        start = stop
    return _stacked(blocks, n_items)


def ease(x: sp.csr_matrix, lam: float, max_items: int, k: int) -> sp.csr_matrix:
    """EASE weights B over the `max_items` items most users liked, each row's `k` largest
    in magnitude."""
    n_items = x.shape[1]
    counts = np.diff(sp.csc_matrix(x).indptr)
    active = np.flatnonzero(counts > 0)
    if len(active) > max_items:
        active = np.sort(active[np.argsort(-counts[active], kind="stable")[:max_items]])
    if len(active) < 2:
        return sp.csr_matrix((n_items, n_items), dtype=np.float32)
    sub = sp.csc_matrix(x[:, active], dtype=np.float32)
    gram = _dense_gram(sub)
    gram[np.diag_indices_from(gram)] += lam
    lower = spd_inverse_lower(gram)  # P, lower triangle only; gram's memory is reused
    n, diagonal = len(active), np.diag(lower).copy()
    columns = np.arange(n)
    rows: list[Rows] = []
    cols: list[Rows] = []
    vals: list[Floats] = []
    block = max(1, 4_000_000 // n)
    for start in range(0, n, block):
        stop = min(start + block, n)
        mine = np.arange(start, stop)
        full = np.where(columns[None, :] > mine[:, None], lower[:, start:stop].T, lower[start:stop])
        weights = full / -diagonal[None, :]
        weights[mine - start, mine] = 0.0
        _keep_top(weights, k, start, rows, cols, vals, by_magnitude=True)
    coo = _csr(rows, cols, vals, n).tocoo()
    return sp.csr_matrix(
        (coo.data, (active[coo.row], active[coo.col])), shape=(n_items, n_items), dtype=np.float32
    )


# Entries of X^T X formed at once by `_dense_gram` (8 MB of float32).
GRAM_BAND_ENTRIES = 2_000_000


def _dense_gram(x: sp.csc_matrix) -> npt.NDArray[np.float32]:
    """X^T X as a dense float32 array, a band of columns at a time: the sparse product of
    the whole matrix (up to n^2 entries at 8 bytes each, before the dense copy) never forms."""
    n = x.shape[1]
    gram = np.empty((n, n), dtype=np.float32)
    by_row = sp.csr_matrix(x.T)
    band = max(1, GRAM_BAND_ENTRIES // max(1, n))
    for start in range(0, n, band):
        stop = min(start + band, n)
        gram[:, start:stop] = (by_row @ x[:, start:stop]).toarray()
    return gram


def spd_inverse_lower(matrix: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """The lower triangle of a symmetric positive definite matrix's inverse (Cholesky),
    computed in the matrix's own memory."""
    matrix = matrix.T  # Fortran order, the same symmetric matrix: LAPACK works in place
    potrf, potri = scipy.linalg.lapack.get_lapack_funcs(("potrf", "potri"), (matrix,))
    factor, info = potrf(matrix, lower=True, overwrite_a=True, clean=False)
    if info != 0:
        raise np.linalg.LinAlgError(f"EASE Gram matrix is not positive definite ({info})")
    inverse, info = potri(factor, lower=True, overwrite_c=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"EASE inverse failed ({info})")
    result: npt.NDArray[np.float32] = inverse
    return result


def _keep_top(
    block: npt.NDArray[Any],
    k: int,
    first_row: int,
    rows: list[Rows],
    cols: list[Rows],
    vals: list[Floats],
    by_magnitude: bool = False,
) -> None:
    """Append each row's `k` largest entries as COO parts: above 0, or by magnitude."""
    n = block.shape[1]
    if k < n:
        key = -np.abs(block) if by_magnitude else -block
        top = np.argpartition(key, k - 1, axis=1)[:, :k]
    else:
        top = np.broadcast_to(np.arange(n), block.shape)
    picked = np.take_along_axis(block, top, axis=1)
    keep = picked != 0 if by_magnitude else picked > 0
    row_of = np.broadcast_to(np.arange(first_row, first_row + block.shape[0])[:, None], top.shape)
    rows.append(row_of[keep].astype(np.int64))
    cols.append(top[keep].astype(np.int64))
    vals.append(picked[keep].astype(np.float32))


def _csr(rows: list[Rows], cols: list[Rows], vals: list[Floats], n: int) -> sp.csr_matrix:
    if not rows:
        return sp.csr_matrix((n, n), dtype=np.float32)
    matrix = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n, n),
        dtype=np.float32,
    )
    matrix.sort_indices()
    return matrix
