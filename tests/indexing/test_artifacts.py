"""A version's arrays, mapped from the file they were saved in."""

from __future__ import annotations

import mmap
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


def mapped(array: np.ndarray) -> bool:
    """Whether the array's memory is a mapping of the file."""
    base = array.base
    while base is not None and not isinstance(base, mmap.mmap):
        base = base.obj if isinstance(base, memoryview) else getattr(base, "base", None)
    return base is not None


def test_a_file_is_mapped_once_whatever_its_arrays(tmp_path: Path) -> None:
    np.savez(tmp_path / "arrays.npz", **saved())
    before = len(list(Path("/proc/self/fd").iterdir()))
    loaded = mapped_arrays(tmp_path / "arrays.npz")
    # Each mapping holds a file descriptor: one for the file, not one per array.
    assert len(list(Path("/proc/self/fd").iterdir())) == before + 1
    assert len(loaded) > 2


def test_each_array_is_mapped_read_only_from_the_npz(tmp_path: Path) -> None:
    arrays = saved()
    np.savez(tmp_path / "arrays.npz", **arrays)
    loaded = mapped_arrays(tmp_path / "arrays.npz")
    assert loaded.keys() == arrays.keys()
    for name, array in arrays.items():
        assert loaded[name].dtype == array.dtype and loaded[name].shape == array.shape, name
        assert np.array_equal(loaded[name], array), name
    assert mapped(loaded["indptr"]) and mapped(loaded["grid"])
    assert type(loaded["indptr"]) is np.ndarray  # no memmap subclass on the request path
    with pytest.raises(ValueError, match="read-only"):
        loaded["weights"][0] = 1.0


def test_a_compressed_npz_is_read_whole(tmp_path: Path) -> None:
    arrays = saved()
    np.savez_compressed(tmp_path / "arrays.npz", **arrays)
    loaded = mapped_arrays(tmp_path / "arrays.npz")
    for name, array in arrays.items():
        assert np.array_equal(loaded[name], array), name
    assert not mapped(loaded["indptr"])
