"""The shrunk item-item cosine (indexing/sources/cooccurrence.py) against its formula."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from indexing import topk
from indexing.sources import cooccurrence
from tests.indexing.sources.test_ease import random_matrix


def test_shrinkage_lets_two_hundred_co_occurrences_outrank_two() -> None:
    # Items 0 and 1 share their only 2 users; items 2 and 3 share 200 of their 250.
    rows, cols = [], []
    for user in range(2):
        rows += [user, user]
        cols += [0, 1]
    for user in range(2, 302):
        shared = user < 202
        picked = [2, 3] if shared else [2 if user % 2 else 3]
        rows += [user] * len(picked)
        cols += picked
    x = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(302, 4))
    plain = cooccurrence.cosine(x, 3, shrink=0.0).toarray()
    assert plain[0, 1] == pytest.approx(1.0) and plain[0, 1] > plain[2, 3]
    shrunk = cooccurrence.cosine(x, 3, shrink=20.0).toarray()
    assert shrunk[2, 3] > shrunk[0, 1]
    assert shrunk[0, 1] == pytest.approx(2 / (2 + 20))
    assert shrunk[2, 3] == pytest.approx(200 / (250 + 20))


def test_cosine_keeps_each_items_k_best_as_the_dense_computation_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    x = random_matrix(120, 60, 0.15, seed=11)
    # Small blocks, so that several are formed and stitched together.
    monkeypatch.setattr(topk, "BLOCK_PAIRS", 500)
    for k, shrink in [(4, 0.0), (10, 5.0), (100, 5.0)]:
        dense = (x.T @ x).toarray()
        norms = np.sqrt(np.diag(dense))
        sims = dense / (norms[:, None] * norms[None, :] + shrink + 1e-9)
        np.fill_diagonal(sims, 0.0)
        got = cooccurrence.cosine(x, k, shrink).toarray()
        for item in range(60):
            positive = np.flatnonzero(sims[item] > 0)
            kept = np.flatnonzero(got[item])
            assert len(kept) == min(k, len(positive))
            np.testing.assert_allclose(got[item, kept], sims[item, kept], rtol=1e-5)
            if len(kept) < len(positive):  # nothing dropped beats what was kept
                dropped = np.setdiff1d(positive, kept)
                assert sims[item, dropped].max() <= sims[item, kept].min() + 1e-6
