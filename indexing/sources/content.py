"""content: what the user's taste says of each item.

    score(c) = cos(v_u, e_c)

v_u the user's taste vector (the normalised sum of the embeddings of the items they
touched, weighed by type and age, indexing/profiles.py), e_c the item's embedding; its
candidates are the item index's nearest to v_u. It speaks from the items' own text, not
from other users: it is fully supported for anyone with a taste, and it carries the users
the other sources know too little of (indexing/hybrid.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from indexing.rowsums import RowSums
from indexing.sources.base import Inner, Rows, Source, User, because

if TYPE_CHECKING:
    from indexing.artifacts import IndexVersion


class Content(Source):
    name = "content"
    from_others = False
    cold = "own"

    def scorer(self, user: User, sums: RowSums) -> Inner | None:
        taste = user.taste
        if taste is None or not np.any(taste):
            return None
        version = user.version
        return Inner(version, version.item_index, version.item_vectors, taste)

    def explain(self, version: IndexVersion, row: int, liked: Rows, recent: Rows) -> str | None:
        """The liked item nearest to `row`."""
        return because(version, row, liked, None)
