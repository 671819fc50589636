"""A version's arrays, mapped from the file they were saved in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from indexing.artifacts import mapped_arrays


def saved() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "indptr": np.arange(0, 3_000_000, 3, dtype=np.int64),  # beyond one page
        "weights": rng.random(1_000, dtype=np.float32),
        "grid": np.asfortranarray(rng.random((7, 5))),
        "flags": rng.random(33) > 0.5,
        "empty": np.zeros((0, 4), dtype=np.int32),
        "one": np.array([2.5]),
    }


def test_each_array_is_mapped_read_only_from_the_npz(tmp_path: Path) -> None:
    arrays = saved()
    np.savez(tmp_path / "arrays.npz", **arrays)
    loaded = mapped_arrays(tmp_path / "arrays.npz")
    assert loaded.keys() == arrays.keys()
    for name, array in arrays.items():
        assert loaded[name].dtype == array.dtype and loaded[name].shape == array.shape, name
        assert np.array_equal(loaded[name], array), name
    assert isinstance(loaded["indptr"], np.memmap) and isinstance(loaded["grid"], np.memmap)
    with pytest.raises(ValueError, match="read-only"):
        loaded["weights"][0] = 1.0


def test_a_compressed_npz_is_read_whole(tmp_path: Path) -> None:
    arrays = saved()
    np.savez_compressed(tmp_path / "arrays.npz", **arrays)
    loaded = mapped_arrays(tmp_path / "arrays.npz")
    for name, array in arrays.items():
        assert np.array_equal(loaded[name], array), name
    assert not isinstance(loaded["indptr"], np.memmap)
