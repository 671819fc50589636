"""Each row's best entries (indexing/sources/topk.py) are those a full sort keeps."""

from __future__ import annotations

import numpy as np
import pytest

from indexing import topk


@pytest.mark.parametrize(("k", "chunk"), [(1, 32_768), (3, 7), (40, 32_768), (40, 5)])
def test_the_best_of_each_row_are_those_a_full_sort_keeps(
    k: int, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(topk, "TOP_ROWS", chunk)  # long rows counted per chunk
    rng = np.random.default_rng(k)
    start, stop = 100, 400
    lengths = rng.choice([0, 1, k, k + 1, 5 * k, 300], size=stop - start)
    row = np.repeat(np.arange(start, stop), lengths)
    col = np.concatenate([np.sort(rng.choice(2_000, n, replace=False)) for n in lengths])
    # Ties in plenty, the ends of (0, 1], and values a bin apart and within one.
    pool = np.array([1.0, 0.5, 0.4999, 0.25, 0.1, 1e-3, 1e-6, 1e-9], dtype=np.float32)
    value = np.where(
        rng.random(len(row)) < 0.5,
        rng.choice(pool, len(row)),
        rng.random(len(row)).astype(np.float32) + np.float32(1e-7),
    ).astype(np.float32)
    value = np.minimum(value, np.float32(1.0))
    found = topk.best_per_row(row, col, value, k, start, stop)
    expected = set()
    for r in range(start, stop):
        at = np.flatnonzero(row == r)
        best = sorted(at.tolist(), key=lambda n: (-float(value[n]), int(col[n])))[:k]
        expected |= {(r, int(col[n]), float(value[n])) for n in best}
    got = set(zip(found[0].tolist(), found[1].tolist(), found[2].tolist(), strict=True))
    assert got == expected
    assert len(found[0]) == len(expected)
