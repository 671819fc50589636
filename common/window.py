"""A trending window's interactions as numbers, as storage reads them and indexing/trending.py
scores them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class WindowRows:
    """The interactions of a window on live items: items and types as codes into the lists
    here, users as codes of their own."""

    item_ids: list[str]  # distinct, in code point order
    categories: list[str | None]  # per item
    published: npt.NDArray[np.float64]  # per item: epoch seconds (NaN if unknown)
    kinds: list[str]  # the types that occur
    items: npt.NDArray[np.int64]  # per interaction: code into item_ids
    users: npt.NDArray[np.int64]  # per interaction: the user's code
    kind_codes: npt.NDArray[np.int64]  # per interaction: code into kinds
    values: npt.NDArray[np.float64]  # per interaction: NaN for none
    at: npt.NDArray[np.float64]  # per interaction: epoch seconds
    now: float  # epoch seconds, the reading's own instant
