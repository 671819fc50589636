"""ease: EASE item-item weights over the user's items.

Steck, "Embarrassingly Shallow Autoencoders for Sparse Data" (WWW 2019), on X:
    P = (X^T X + lambda I)^-1,  B = I - P diag(1 / diag(P)),  score(u) = X_u B
fitted over the `ease_max_items` items with the most positive users (the dense inverse is
n^2 memory and n^3 time); beyond them EASE has no opinion and the other sources speak. Each
row of B keeps its `ease_neighbours` weights largest in magnitude (the negative ones say
"explained away", and dropping them costs more than dropping small positive ones), so
serving is a sparse row sum:
    score(c) = sum over the user's positive items j of e_j B[j, c]
(e_j: the user's item evidence, base.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import scipy.linalg
import scipy.sparse as sp

from indexing.rowsums import RowSums
from indexing.sources.base import (
    Floats,
    Rows,
    Source,
    Summed,
    Training,
    User,
    because,
    mean_support,
)

if TYPE_CHECKING:
    from indexing.artifacts import IndexVersion

# Entries of X^T X formed at once by `_dense_gram` (8 MB of float32).
GRAM_BAND_ENTRIES = 2_000_000


def ease(x: sp.csr_matrix, lam: float, max_items: int, k: int) -> sp.csr_matrix:
    """EASE weights B over the `max_items` items most users liked, each row's `k` largest
    in magnitude: (n_items, n_items) float32."""
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
        _keep_top(weights, k, start, rows, cols, vals)
    coo = _csr(rows, cols, vals, n).tocoo()
    return sp.csr_matrix(
        (coo.data, (active[coo.row], active[coo.col])), shape=(n_items, n_items), dtype=np.float32
    )


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
) -> None:
    """Append each row's `k` entries largest in magnitude (those not 0) as COO parts."""
    n = block.shape[1]
    if k < n:
        top = np.argpartition(-np.abs(block), k - 1, axis=1)[:, :k]
    else:
        top = np.broadcast_to(np.arange(n), block.shape)
    picked = np.take_along_axis(block, top, axis=1)
    keep = picked != 0
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


class Ease(Source):
    name = "ease"
    fitted_with = ("item_evidence", "ease_lambda", "ease_max_items", "ease_neighbours")
    searched = ("item_evidence", "ease_lambda")
    penalties = ("ease_lambda",)

    def fit(self, training: Training) -> dict[str, Any]:
        settings = training.settings
        weights = ease(
            training.items, settings.ease_lambda, settings.ease_max_items, settings.ease_neighbours
        )
        return {"ease": weights, "binary": training.binary}

    def scorer(self, user: User, sums: RowSums) -> Summed | None:
        model = user.collaborative
        if model is None:
            return None
        return Summed.of(sums, model.ease, user.liked, user.items)

    def support(self, user: User) -> float:
        """Of the user's items EASE covers (0 for the others), weighted by item evidence."""
        assert user.collaborative is not None
        return mean_support(user.known * user.collaborative.in_ease[user.liked], user.items)

    def explain(self, version: IndexVersion, row: int, liked: Rows, recent: Rows) -> str | None:
        """The liked item whose EASE row weighs `row` most."""
        model = version.collaborative
        return because(version, row, liked, model.ease if model is not None else None)
