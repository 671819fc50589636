"""What a ranking source is, and what it reads.

A source is one way of scoring items for a user; indexing/hybrid.py blends them. Each says
  - how it is fitted from a build's data (`fit`: the parts of the version's models it serves
    from, nothing where it needs none),
  - how it scores one user (`scorer`: its own best candidates, and a raw score for any row),
  - how far it is to be trusted for that user (`support`, for a source that speaks from what
    other users did),
  - what it says of an item in an explanation (`explain`),
and is registered in one line (indexing/sources/__init__.py): the blend, the build's tuning,
the explanations and the weight settings all go through that registry.

The evidence of a (user, item) pair is e = w * 0.5 ** (age / half_life) when its net weight
w is above 0 (indexing/profiles.py, `evidence`): X, users x items, is that evidence, and the
item-item models learn from it or from 1 for each positive pair (`item_evidence`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from common.settings import CollaborativeSettings, IndexSettings, RankingSettings
from indexing import ann
from indexing.rowsums import RowSums
from indexing.subsets import Subset

if TYPE_CHECKING:
    from indexing.artifacts import IndexVersion
    from indexing.collaborative import Collaborative

Floats = npt.NDArray[np.float32]
Rows = npt.NDArray[np.int64]
# A source's weight for a user with no positive items yet: none, its own
# `cold_<name>_weight`, or its `<name>_weight` whatever the history ("steady").
Cold = Literal["none", "own", "steady"]
_NO_ROWS = np.zeros(0, dtype=np.int64)


def positive_part(evidence: sp.csr_matrix) -> sp.csr_matrix:
    """X: the pairs whose evidence is above 0, with their evidence."""
    positive = sp.csr_matrix(evidence.multiply(evidence > 0), dtype=np.float32)
    positive.eliminate_zeros()
    return positive


def item_part(evidence: sp.csr_matrix, settings: CollaborativeSettings) -> sp.csr_matrix:
    """The X the item-item models learn from: `positive_part`, each pair 1 where
    `item_evidence` is binary."""
    x = positive_part(evidence)
    if settings.item_evidence == "binary":
        x.data[:] = 1.0
    return x


@dataclass(frozen=True)
class Training:
    """What a build fits its sources on: the users x items evidence, the model settings, and
    the positive interactions in time order (none: nothing follows anything)."""

    evidence: sp.csr_matrix
    settings: CollaborativeSettings
    index: IndexSettings
    sequences: Sequences | None = None

    @cached_property
    def positive(self) -> sp.csr_matrix:
        return positive_part(self.evidence)

    @cached_property
    def items(self) -> sp.csr_matrix:
        return item_part(self.evidence, self.settings)

    @property
    def binary(self) -> bool:
        return self.settings.item_evidence == "binary"


def recent_weights(count: int, settings: RankingSettings) -> Floats:
    """The weight of each of the `count` newest positive items, newest first: the k-th
    0.5 ** (k / (recent_items / 2))."""
    k = np.arange(count, dtype=np.float32)
    weights: Floats = np.power(0.5, k / (settings.recent_items / 2.0)).astype(np.float32)
    return weights


@dataclass(frozen=True)
class User:
    """One user as the sources read them: positive items' rows, newest first, and their
    evidence; taste vector; the served trending list."""

    version: IndexVersion
    settings: RankingSettings
    liked: Rows
    evidence: Floats
    taste: Floats | None = None
    trending: Trend | None = None

    @property
    def collaborative(self) -> Collaborative | None:
        """The version's collaborative models, where the user has positive items to read
        them through."""
        return self.version.collaborative if len(self.liked) else None

    @cached_property
    def items(self) -> Floats:
        """The user's row of the X the item-item models learned from."""
        assert self.version.collaborative is not None
        return self.version.collaborative.item_evidence(self.evidence)

    @cached_property
    def recent(self) -> Rows:
        """The `recent_items` newest positive items."""
        return self.liked[: self.settings.recent_items]

    @cached_property
    def newest(self) -> Floats:
        """`recent`'s weights: `recent_weights` times their item evidence."""
        count = len(self.recent)
        weights: Floats = recent_weights(count, self.settings) * self.items[:count]
        return weights

    @cached_property
    def known(self) -> Floats:
        """The `item_support` of each positive item (indexing/artifacts.py)."""
        support: Floats = self.version.item_support[self.liked]
        return support


class Scorer(Protocol):
    """One source's scores for one user."""

    def propose(self, k: int, among: Subset | None) -> Rows:
        """Its best `k` rows (fewer where it knows fewer), within `among` where given."""
        ...

    def scores(self, rows: Rows) -> Floats:
        """Its raw score of each row."""
        ...


class Source(ABC):
    """A ranking source: see the module's docstring."""

    name: ClassVar[str]  # as settings, manifests and explanations name it
    # Whether it speaks from what other users did: its support for a user is measured, and
    # what it lacks of it moves to content (indexing/hybrid.py).
    from_others: ClassVar[bool] = True
    cold: ClassVar[Cold] = "none"  # its weight for a user with no positive items yet
    # The model settings (CollaborativeSettings) its fit reads; of those, the ones each build
    # searches, judged by this source alone, in the order searched; and the penalties in
    # units of squared evidence (moved with the item evidence, indexing/tuning.py).
    fitted_with: ClassVar[tuple[str, ...]] = ()
    searched: ClassVar[tuple[str, ...]] = ()
    penalties: ClassVar[tuple[str, ...]] = ()
    # Whether its trust weighs how its scores spread for a user against the typical user's.
    spread_weighed: ClassVar[bool] = True

    @property
    def weight(self) -> str:
        """The RankingSettings weight of this source for a user with a rich history."""
        return f"{self.name}_weight"

    @property
    def cold_weight(self) -> str | None:
        """The RankingSettings weight of this source for a user with no positive items."""
        if self.cold == "own":
            return f"cold_{self.name}_weight"
        return self.weight if self.cold == "steady" else None

    def fit(self, training: Training) -> dict[str, Any]:
        """The parts of the version's models (indexing/collaborative.py, `Collaborative`)
        this source serves from, by field; none for a source that fits nothing."""
        return {}

    @abstractmethod
    def scorer(self, user: User, sums: RowSums) -> Scorer | None:
        """Its scores for `user` (None: it has nothing to say of them, and scores 0).
        `sums` holds the request's accumulators, for a source that sums rows."""

    def support(self, user: User) -> float:
        """The mean `item_support` of the user's items it reads, weighted as it weighs them
        (asked only of a source that speaks from others, and of a user with positive
        items); 1, fully supported, unless the source says otherwise."""
        return 1.0

    @abstractmethod
    def explain(self, version: IndexVersion, row: int, liked: Rows, recent: Rows) -> str | None:
        """Why this source put `row` in a list, in words (None: it cannot say); `liked` are
        the user's positive items, newest first, and `recent` the newest of them."""

    def shaped(self, values: Floats) -> Floats:
        """Its scores as they are standardised."""
        return values


def mean_support(support: Floats, weights: Floats) -> float:
    """The mean of the items' `support`, weighted by `weights` (1 with none to weigh)."""
    total = float(weights.sum())
    return float(support @ weights) / total if total > 0 else 1.0


@dataclass(frozen=True)
class Summed:
    """Scores that are one of the request's row sums (indexing/rowsums.py)."""

    sums: RowSums
    which: int

    @classmethod
    def of(cls, sums: RowSums, matrix: sp.csr_matrix, rows: Rows, weights: Floats) -> Summed:
        """The sum of `matrix`'s `rows`, weighted by `weights`, in an accumulator of its own."""
        which = sums.take()
        sums.add(which, matrix, rows, weights)
        return cls(sums, which)

    def propose(self, k: int, among: Subset | None) -> Rows:
        return self.sums.top(self.which, k, among.contains if among else None)

    def scores(self, rows: Rows) -> Floats:
        return self.sums.sums[self.which][rows]


# Within a subset, a search proposes at most this many: a graph search kept to a share s of
# the rows walks some k / s of them (at 1M items, 225 of a 5% subset took 11 ms a search),
# and the candidates are every source's together, the subset's row sums and trending
# lists as deep as ever.
SUBSET_PROPOSALS = 64


@dataclass(frozen=True)
class Inner:
    """Scores that are inner products with a query vector, searched in an index whose ids
    are item rows (the item index, or the factor index)."""

    version: IndexVersion
    index: Any
    vectors: Floats  # the index's own vectors, by row
    query: Floats

    def propose(self, k: int, among: Subset | None) -> Rows:
        if not np.any(self.query):
            return _NO_ROWS
        if among is None:
            _, hits = ann.search(self.index, self.query[None, :], k)
            found: Rows = hits[0][hits[0] >= 0].astype(np.int64)
            return found
        return among.nearest(self.index, self.query, min(k, SUBSET_PROPOSALS))[1]

    def scores(self, rows: Rows) -> Floats:
        found: Floats = self.vectors[rows] @ self.query
        return found


def closest(
    version: IndexVersion, row: int, pool: Rows, matrix: sp.csr_matrix | None
) -> int | None:
    """The item of `pool` that most explains `row`: the strongest of their rows of `matrix`
    at `row`, or, where none is above 0 (or there is no matrix), the nearest by vector."""
    if len(pool) == 0:
        return None
    if matrix is not None:
        strength = np.asarray(matrix[pool][:, row].todense()).ravel()
        if strength.max(initial=0.0) > 0:
            return int(pool[int(np.argmax(strength))])
    similarity = version.item_vectors[pool] @ version.item_vectors[row]
    return int(pool[int(np.argmax(similarity))])


def because(
    version: IndexVersion, row: int, pool: Rows, matrix: sp.csr_matrix | None
) -> str | None:
    """Says "because you liked" the item of `pool` that most explains `row`."""
    found = closest(version, row, pool, matrix)
    return None if found is None else f"because you liked {version.item_titles[found]}"


@dataclass(frozen=True)
class Sequences:
    """Positive interactions side by side, sorted by user, then time (ties as given)."""

    users: Rows
    items: Rows
    times: npt.NDArray[np.float64]


@dataclass(frozen=True)
class Trend:
    """The trending score per item row, and the rows scoring above 0 best first: a
    request's trending candidates are a slice, not a scan of the catalog. `within`, where
    given, gives those of a subset, best first (sorted once, as `best` is)."""

    scores: Floats
    best: Rows
    within: Callable[[Subset], Rows] | None = None

    def top(self, k: int, among: Subset | None = None) -> Rows:
        """The best `k` rows, or the best `k` of a subset."""
        if among is None:
            return self.best[:k]
        if self.within is not None:
            return self.within(among)[:k]
        # A served trending list is at most trending.TOP rows: filtering it is a slice too.
        return self.best[among.contains(self.best)][:k]

    @classmethod
    def of(cls, scores: Floats) -> Trend:
        """Sorts once: hold the result while the scores hold."""
        scores = np.asarray(scores, dtype=np.float32)
        positive = np.flatnonzero(scores > 0)
        return cls(scores, positive[np.lexsort((positive, -scores[positive]))].astype(np.int64))
