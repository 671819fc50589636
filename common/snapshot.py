"""The catalog and interactions as of one instant: what a build and an evaluation learn from."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Snapshot:
    """Items with their vectors and the interactions on them, as row numbers into both."""

    as_of: datetime
    item_ids: list[str]
    titles: list[str]
    categories: list[str | None]
    published: npt.NDArray[np.float64]  # epoch seconds, NaN when unknown
    item_vectors: npt.NDArray[np.float32]  # (items, dimension), unit rows
    user_ids: list[str]
    user_rows: npt.NDArray[np.int64]  # per interaction
    item_rows: npt.NDArray[np.int64]  # per interaction
    kinds: list[str]
    values: list[float | None]
    times: npt.NDArray[np.float64]  # epoch seconds
