"""The item rows a list is kept to: a category, a filter's passing items, or both.

Retrieval keeps to a subset rather than cutting a finished list: the nearest-neighbour
sources search with a FAISS selector of its rows (or scan them where they are few,
indexing/ann.py), the row sums keep only its columns, and popularity reads its rows sorted
once. So a list of a subset that 1% of the catalog passes is as deep as any other, and
costs about what any other does.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt

from indexing import ann

Rows = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]


@dataclass(eq=False)
class Subset:
    """Item rows by a mask over a version's rows; `key` names it in caches and logs."""

    member: Mask
    key: str
    _engaged: Rows | None = field(default=None, init=False, repr=False)

    @cached_property
    def rows(self) -> Rows:
        """Its rows, ascending."""
        return np.flatnonzero(self.member).astype(np.int64)

    def __len__(self) -> int:
        return len(self.rows)

    def contains(self, rows: Rows) -> Mask:
        """Which of `rows` are in it."""
        inside: Mask = self.member[rows]
        return inside

    def __and__(self, other: Subset) -> Subset:
        return Subset(self.member & other.member, f"{self.key} and {other.key}")

    @cached_property
    def _bitmap(self) -> tuple[npt.NDArray[np.uint8], Any]:
        bits = np.packbits(self.member, bitorder="little")
        # The selector points into `bits`: they are kept together.
        return bits, faiss.IDSelectorBitmap(len(self.member), faiss.swig_ptr(bits))

    def selector(self) -> Any:
        """A FAISS selector of its rows (made on first use, one bit per item): a search
        finds its nearest items by walking the index, not by scoring every row of it."""
        return self._bitmap[1]

    def nearest(
        self, index: Any, query: npt.NDArray[np.float32], k: int, ef: int | None = None
    ) -> tuple[npt.NDArray[np.float32], Rows]:
        """Top-k (scores, rows) of one query within it, by an index whose ids are item rows
        (the item or the factor index): `ann.search_among`."""
        return ann.search_among(index, query, k, self.rows, self.selector, ef)

    def engaged(self, popularity: npt.NDArray[np.float32]) -> Rows:
        """Its rows with any popularity, most popular first (ties by row): sorted once,
        so a request reads a slice."""
        if self._engaged is None:
            rows = self.rows
            ordered = rows[np.lexsort((rows, -popularity[rows]))]
            # Popularity falls along the list: the first row without any is found by bisection.
            end = bisect.bisect_left(ordered, True, key=lambda r: bool(popularity[r] <= 0))
            self._engaged = ordered[:end]
        return self._engaged
