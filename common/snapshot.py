"""The catalog and interactions as of one instant: what a build and an evaluation learn from."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

# asyncpg's Record and plain dicts alike: anything read by column name
Row = Any


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

    @classmethod
    def of_rows(
        cls, as_of: datetime, items: Sequence[Row], interactions: Sequence[Row], dimension: int
    ) -> Snapshot:
        """From item rows (item_id, title, category, published, vector as float32 bytes) and
        interaction rows (user_id, item_id, type, value, at), users in order of appearance.
        Interactions on items not among `items` are left out: there is no vector to learn
        from."""
        item_ids = [r["item_id"] for r in items]
        position = {item_id: n for n, item_id in enumerate(item_ids)}
        vectors = (
            np.frombuffer(b"".join(r["vector"] for r in items), dtype=np.float32)
            .reshape(len(items), dimension)
            .copy()
            if items
            else np.zeros((0, dimension), dtype=np.float32)
        )
        user_ids: list[str] = []
        user_position: dict[str, int] = {}
        user_rows, item_rows, kinds, values, times = [], [], [], [], []
        for r in interactions:
            row = position.get(r["item_id"])
            if row is None:
                continue
            user = user_position.get(r["user_id"])
            if user is None:
                user = user_position[r["user_id"]] = len(user_ids)
                user_ids.append(r["user_id"])
            user_rows.append(user)
            item_rows.append(row)
            kinds.append(r["type"])
            values.append(r["value"])
            times.append(float(r["at"]))
        return cls(
            as_of=as_of,
            item_ids=item_ids,
            titles=[r["title"] for r in items],
            categories=[r["category"] for r in items],
            published=np.array(
                [float(r["published"]) if r["published"] is not None else np.nan for r in items],
                dtype=np.float64,
            ),
            item_vectors=vectors,
            user_ids=user_ids,
            user_rows=np.array(user_rows, dtype=np.int64),
            item_rows=np.array(item_rows, dtype=np.int64),
            kinds=kinds,
            values=values,
            times=np.array(times, dtype=np.float64),
        )
