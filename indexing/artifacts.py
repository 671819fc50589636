"""An index version in memory, and its files on disk.

A version is five files plus a manifest:
  items.faiss   item vectors, searchable (ids are row numbers)
  users.faiss   user vectors, searchable (for similar users)
  factors.faiss ALS item factors, searchable by inner product
  arrays.npz    per-item category codes and popularity; per-user interaction history (CSR);
                item-item cosine neighbours, EASE weights and followers (CSR); what the
                build found ahead: users' lists and items' nearest items (CSR)
  ids.json      item ids, user ids and category names, in row order
The manifest names the sha256 of each file; loading refuses a file whose digest differs.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import struct
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from common.errors import RecsError
from common.settings import RankingSettings
from embeddings.encoder import Vectors
from indexing import ann
from indexing.collaborative import Collaborative
from indexing.subsets import Subset

ARTIFACTS = ("items.faiss", "users.faiss", "factors.faiss", "arrays.npz", "ids.json")
MANIFEST = "manifest.json"
# The users an item needs for its collaborative rows to count half (`item_support`): the
# rows of an item three people share say little of what goes with it.
SUPPORT_USERS = 10.0


class CorruptArtifact(RecsError):
    code = "corrupt_artifact"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Part:
    """Lists ranked after the version went live, for some of its users: user row
    users[k]'s list is rows[indptr[k]:indptr[k + 1]]."""

    users: npt.NDArray[np.int64]
    indptr: npt.NDArray[np.int64]
    rows: npt.NDArray[np.int32]
    scores: npt.NDArray[np.float32]
    popular: npt.NDArray[np.bool_]

    def save(self, path: Path) -> dict[str, Any]:
        """Write the part (uncompressed, so that it can be mapped); its sha256 and size."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:
            np.savez(
                f,
                users=self.users,
                indptr=self.indptr,
                rows=self.rows,
                scores=self.scores,
                popular=self.popular,
            )
        return {"sha256": sha256_of(path), "bytes": path.stat().st_size}

    @classmethod
    def load(cls, path: Path, sha256: str) -> Part:
        """A saved part, mapped, refusing a file whose sha256 is not `sha256`."""
        if sha256_of(path) != sha256:
            raise CorruptArtifact(f"{path.name} fails its sha256")
        found = mapped_arrays(path)
        return cls(
            found["users"], found["indptr"], found["rows"], found["scores"], found["popular"]
        )


@dataclass(frozen=True)
class KeptLists:
    """Each user row's kept list: rows[indptr[u]:indptr[u + 1]] as the build ranked it, or
    else its list in one of the parts ranked after (empty in both: rank it live)."""

    indptr: npt.NDArray[np.int64]
    rows: npt.NDArray[np.int32]
    scores: npt.NDArray[np.float32]
    popular: npt.NDArray[np.bool_]  # the list is the cold-start popular list
    ranked_with: dict[str, Any]
    parts: tuple[Part, ...] = ()
    # Per user row, the part holding its list (-1: none) and its place in that part.
    part_of: npt.NDArray[np.int32] | None = None
    place: npt.NDArray[np.int32] | None = None

    @classmethod
    def empty(cls, n_users: int, ranked_with: dict[str, Any]) -> KeptLists:
        return cls(
            np.zeros(n_users + 1, dtype=np.int64),
            np.zeros(0, dtype=np.int32),
            np.zeros(0, dtype=np.float32),
            np.zeros(n_users, dtype=bool),
            ranked_with,
        )

    def get(
        self, user_row: int
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32], str] | None:
        """The user's rows, scores and strategy ("hybrid" or "popular"); None: rank live."""
        start, end = int(self.indptr[user_row]), int(self.indptr[user_row + 1])
        if start != end:
            strategy = "popular" if self.popular[user_row] else "hybrid"
            return self.rows[start:end].astype(np.int64), self.scores[start:end], strategy
        if self.part_of is None or self.place is None or self.part_of[user_row] < 0:
            return None
        part, k = self.parts[self.part_of[user_row]], int(self.place[user_row])
        start, end = int(part.indptr[k]), int(part.indptr[k + 1])
        if start == end:
            return None
        strategy = "popular" if part.popular[k] else "hybrid"
        return part.rows[start:end].astype(np.int64), part.scores[start:end], strategy

    def with_part(self, part: Part) -> KeptLists:
        """These lists and `part`'s, for users who have none yet (the build's come first)."""
        n_users = len(self.indptr) - 1
        part_of = np.full(n_users, -1, np.int32) if self.part_of is None else self.part_of.copy()
        place = np.zeros(n_users, np.int32) if self.place is None else self.place.copy()
        users = np.asarray(part.users, dtype=np.int64)
        fresh = (part_of[users] < 0) & (np.diff(self.indptr)[users] == 0)
        part_of[users[fresh]] = len(self.parts)
        place[users[fresh]] = np.flatnonzero(fresh).astype(np.int32)
        return replace(self, parts=(*self.parts, part), part_of=part_of, place=place)

    @property
    def depth(self) -> int:
        return int(self.ranked_with["depth"])

    @property
    def users(self) -> int:
        """Users with a list held: from the build, or ranked in a part (where an empty one,
        answered by a live ranking, still counts: the user is not ranked again)."""
        held = np.diff(self.indptr) > 0
        if self.part_of is not None:
            held |= self.part_of >= 0
        return int(np.count_nonzero(held))


@dataclass(frozen=True)
class Nearest:
    """Each item row's nearest items by the item index, found at build time, itself left
    out: rows[indptr[i]:indptr[i + 1]], best first (empty: search live)."""

    indptr: npt.NDArray[np.int64]
    rows: npt.NDArray[np.int32]
    scores: npt.NDArray[np.float32]
    depth: int  # how many each list held before its item was left out

    def get(self, item_row: int) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]] | None:
        start, end = int(self.indptr[item_row]), int(self.indptr[item_row + 1])
        if start == end:
            return None
        return self.rows[start:end], self.scores[start:end]

    @property
    def items(self) -> int:
        return int(np.count_nonzero(np.diff(self.indptr)))


@dataclass
class IndexVersion:
    """Everything ranking needs, in memory: no database round trip per item."""

    manifest: dict[str, Any]
    item_ids: list[str]
    item_titles: list[str]  # for explanations ("because you liked <title>")
    item_index: Any
    category_names: list[str]
    item_category: npt.NDArray[np.int32]  # code into category_names, -1 for none
    popularity: npt.NDArray[np.float32]  # decayed weighted engagement at build time
    user_ids: list[str]
    user_index: Any
    history_indptr: npt.NDArray[np.int64]  # user u's items: history_items[indptr[u]:indptr[u+1]]
    history_items: npt.NDArray[np.int32]
    history_weights: npt.NDArray[np.float32]  # net (undecayed) weight per (user, item)
    history_times: npt.NDArray[np.float64] | None = None  # newest interaction per pair, epoch s
    collaborative: Collaborative | None = None
    lists: KeptLists | None = None  # ranked at build time (indexing/precompute.py)
    nearest: Nearest | None = None  # found at build time (indexing/precompute.py)
    # What `embeddings.encoder.centre` took off the catalog's vectors: a query vector is
    # placed in the version's space by taking it off too (None: a version built before).
    embedding_mean: Vectors | None = None
    # The recorded parts of the lists ranked after the build that this copy has read.
    parts_read: set[int] = field(default_factory=set)
    item_vectors: Vectors = field(init=False)
    user_vectors: Vectors = field(init=False)
    item_row: dict[str, int] = field(init=False)
    user_row: dict[str, int] = field(init=False)
    category_code: dict[str, int] = field(init=False)  # name -> code in item_category
    popular_rows: npt.NDArray[np.int64] = field(init=False)  # by popularity, ties by row
    engaged_rows: npt.NDArray[np.int64] = field(init=False)  # popular_rows with popularity > 0
    # Per item row, how far its collaborative rows are to be trusted: u / (u + SUPPORT_USERS)
    # for the u users with a positive history of it (indexing/hybrid.py).
    item_support: npt.NDArray[np.float32] = field(init=False)
    # Each category's rows, made on first use.
    _categories: dict[str, Subset] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.item_vectors = ann.vectors_of(self.item_index)
        self.user_vectors = ann.vectors_of(self.user_index)
        self.item_row = {item_id: n for n, item_id in enumerate(self.item_ids)}
        self.user_row = {user_id: n for n, user_id in enumerate(self.user_ids)}
        self.category_code = {name: code for code, name in enumerate(self.category_names)}
        users = np.bincount(
            self.history_items[self.history_weights > 0], minlength=len(self.item_ids)
        ).astype(np.float32)
        self.item_support = users / (users + np.float32(SUPPORT_USERS))
        # Sorted once per version, so a popular list costs its own length, not a sort.
        self.popular_rows = np.argsort(-self.popularity, kind="stable").astype(np.int64)
        self.engaged_rows = self.popular_rows[self.popularity[self.popular_rows] > 0]
        self._categories = {}

    @property
    def typical(self) -> dict[str, dict[str, float]]:
        """Each source's typical spread of scores over a user's candidates and typical
        support, as its build measured them (indexing/ranking.py, `typical`); empty for a
        version built before they were."""
        found: dict[str, dict[str, float]] = self.manifest.get("typical") or {}
        return found

    @property
    def content_informative(self) -> float:
        """How far its build found content to tell what users go on to (0: not at all, or a
        version built before it was measured): indexing/hybrid.py moves the weight that the
        sources speaking from other users lack support for to content by this share."""
        return float(self.manifest.get("content_informative") or 0.0)

    def in_category(self, category: str) -> Subset | None:
        """The category's rows as a subset (made once per version and category); None for
        a category the version does not know."""
        found = self._categories.get(category)
        if found is None:
            code = self.category_code.get(category)
            if code is None:
                return None
            found = Subset(self.item_category == code, f"category {category!r}")
            self._categories[category] = found
        return found

    def ranking(self, base: RankingSettings) -> RankingSettings:
        """The ranking settings this version serves: `base` with the blend its build chose."""
        chosen = self.manifest.get("tuning", {}).get("chosen", {}).get("ranking")
        return base.model_copy(update=chosen) if chosen else base

    @property
    def version(self) -> int:
        return int(self.manifest["version"])

    @property
    def similar_ef(self) -> int | None:
        """The beam of this version's similar-items searches, as its build found each item's
        nearest items (None: the item index's own, for a version built before it was set)."""
        found = self.manifest.get("item_index", {}).get("similar_ef_search")
        return int(found) if found is not None else None

    @property
    def data_as_of(self) -> float:
        """Epoch seconds of the snapshot this version was built from."""
        return float(self.manifest["data_as_of_epoch"])

    def history(self, user_row: int) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]]:
        start, end = self.history_indptr[user_row], self.history_indptr[user_row + 1]
        return self.history_items[start:end], self.history_weights[start:end]

    def history_at(self, user_row: int) -> npt.NDArray[np.float64]:
        start, end = self.history_indptr[user_row], self.history_indptr[user_row + 1]
        if self.history_times is None:
            return np.zeros(end - start, dtype=np.float64)
        return self.history_times[start:end]

    def save(self, folder: Path) -> dict[str, dict[str, Any]]:
        """Write the artifacts; return {name: {sha256, bytes}} for the manifest."""
        if self.collaborative is None or self.history_times is None:
            raise ValueError("only an assembled version (with its collaborative model) is saved")
        folder.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self.item_index, str(folder / "items.faiss"))
        faiss.write_index(self.user_index, str(folder / "users.faiss"))
        faiss.write_index(self.collaborative.factor_index, str(folder / "factors.faiss"))
        neighbours, ease = self.collaborative.neighbours, self.collaborative.ease
        following = self.collaborative.following
        arrays: dict[str, Any] = dict(
            item_category=self.item_category,
            popularity=self.popularity,
            history_indptr=self.history_indptr,
            history_items=self.history_items,
            history_weights=self.history_weights,
            history_times=self.history_times,
            neighbour_indptr=neighbours.indptr,
            neighbour_items=neighbours.indices,
            neighbour_weights=neighbours.data,
            ease_indptr=ease.indptr,
            ease_items=ease.indices,
            ease_weights=ease.data,
            following_indptr=following.indptr,
            following_items=following.indices,
            following_weights=following.data,
            collaborative_params=np.array(
                [
                    self.collaborative.regularization,
                    self.collaborative.alpha,
                    self.collaborative.half_life_days,
                    float(self.collaborative.binary),
                ]
            ),
        )
        if self.embedding_mean is not None:
            arrays["embedding_mean"] = self.embedding_mean
        arrays |= _lists_arrays(self.lists)
        if self.nearest is not None:
            arrays |= {
                "nearest_indptr": self.nearest.indptr,
                "nearest_rows": self.nearest.rows,
                "nearest_scores": self.nearest.scores,
                "nearest_depth": np.array([self.nearest.depth]),
            }
        np.savez(folder / "arrays.npz", **arrays)
        ids = {
            "items": self.item_ids,
            "titles": self.item_titles,
            "users": self.user_ids,
            "categories": self.category_names,
        }
        (folder / "ids.json").write_text(json.dumps(ids))
        return {
            name: {"sha256": sha256_of(folder / name), "bytes": (folder / name).stat().st_size}
            for name in ARTIFACTS
        }

    @classmethod
    def load(cls, folder: Path, manifest: dict[str, Any]) -> IndexVersion:
        """Read a version's files, refusing any whose sha256 is not the manifest's."""
        verify(folder, manifest)
        ids = json.loads((folder / "ids.json").read_text())
        loaded = mapped_arrays(folder / "arrays.npz")
        n_items = len(ids["items"])
        params = [float(x) for x in loaded["collaborative_params"]]
        regularization, alpha, half_life = params[:3]
        binary = len(params) > 3 and params[3] > 0  # an older version's items weigh evidence
        collaborative = Collaborative(
            factor_index=_read_index(folder / "factors.faiss"),
            neighbours=sp.csr_matrix(
                (
                    loaded["neighbour_weights"],
                    loaded["neighbour_items"],
                    loaded["neighbour_indptr"],
                ),
                shape=(n_items, n_items),
            ),
            ease=sp.csr_matrix(
                (loaded["ease_weights"], loaded["ease_items"], loaded["ease_indptr"]),
                shape=(n_items, n_items),
            ),
            following=_following(loaded, n_items),
            regularization=regularization,
            alpha=alpha,
            half_life_days=half_life,
            binary=binary,
        )
        return cls(
            manifest=manifest,
            item_ids=ids["items"],
            item_titles=ids["titles"],
            item_index=_read_index(folder / "items.faiss"),
            category_names=ids["categories"],
            item_category=loaded["item_category"],
            popularity=loaded["popularity"],
            user_ids=ids["users"],
            user_index=_read_index(folder / "users.faiss"),
            history_indptr=loaded["history_indptr"],
            history_items=loaded["history_items"],
            history_weights=loaded["history_weights"],
            history_times=loaded["history_times"],
            collaborative=collaborative,
            lists=_lists(loaded, manifest),
            nearest=_nearest(loaded),
            embedding_mean=loaded.get("embedding_mean"),
        )


def _lists_arrays(lists: KeptLists | None) -> dict[str, npt.NDArray[Any]]:
    if lists is None:
        return {}
    return {
        "lists_indptr": lists.indptr,
        "lists_rows": lists.rows,
        "lists_scores": lists.scores,
        "lists_popular": lists.popular,
    }


def _lists(loaded: dict[str, Any], manifest: dict[str, Any]) -> KeptLists | None:
    """The lists ranked at build time; none for a version built without them."""
    ranked_with = manifest.get("precomputed", {}).get("ranked_with")
    if "lists_indptr" not in loaded or ranked_with is None:
        return None
    return KeptLists(
        loaded["lists_indptr"],
        loaded["lists_rows"],
        loaded["lists_scores"],
        loaded["lists_popular"],
        ranked_with,
    )


def _nearest(loaded: dict[str, Any]) -> Nearest | None:
    """The nearest items found at build time; none for a version built without them."""
    if "nearest_indptr" not in loaded:
        return None
    return Nearest(
        loaded["nearest_indptr"],
        loaded["nearest_rows"],
        loaded["nearest_scores"],
        int(loaded["nearest_depth"][0]),
    )


def _following(loaded: dict[str, Any], n_items: int) -> sp.csr_matrix:
    """What follows what; nothing, for a version built before that was learned."""
    if "following_indptr" not in loaded:
        return sp.csr_matrix((n_items, n_items), dtype=np.float32)
    return sp.csr_matrix(
        (loaded["following_weights"], loaded["following_items"], loaded["following_indptr"]),
        shape=(n_items, n_items),
    )


def mapped_arrays(path: Path) -> dict[str, npt.NDArray[Any]]:
    """The arrays of an .npz, each mapped read-only from the file where it lies, as the
    FAISS files are: every API process serving the version shares one copy in the page
    cache, and a page is read only when a request touches it.

    np.savez stores its members uncompressed, so each one is a .npy, header then data,
    at its place in the zip. A compressed member is read whole. The file is mapped once,
    whatever its number of members: each mapping holds a file descriptor."""
    arrays: dict[str, npt.NDArray[Any]] = {}
    with zipfile.ZipFile(path) as archive, path.open("rb") as raw:
        whole = mmap.mmap(raw.fileno(), 0, access=mmap.ACCESS_READ)  # a zip is never empty
        for info in archive.infolist():
            name = info.filename.removesuffix(".npy")
            if info.compress_type != zipfile.ZIP_STORED:
                with archive.open(info) as member:
                    arrays[name] = np.lib.format.read_array(member)
                continue
            raw.seek(info.header_offset)
            local = raw.read(_LOCAL_HEADER)
            name_length, extra_length = struct.unpack("<HH", local[26:30])
            raw.seek(info.header_offset + _LOCAL_HEADER + name_length + extra_length)
            version = np.lib.format.read_magic(raw)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(raw)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(raw)
            if 0 in shape:  # nothing to map
                arrays[name] = np.zeros(shape, dtype)
                continue
            count = int(np.prod(shape))
            # A plain read-only ndarray over the mapped pages (np.memmap's own __getitem__
            # and __array_wrap__ ran in Python on every slice: 3% of a list lookup's samples).
            flat = np.frombuffer(whole, dtype, count, raw.tell())
            arrays[name] = flat.reshape(shape, order="F" if fortran else "C")
    return arrays


_LOCAL_HEADER = 30  # a zip member's fixed local header; its name and extra field follow


def _read_index(path: Path) -> Any:
    """A FAISS index whose vectors stay in the file, mapped read-only: every API process
    serving the version shares one copy of them in the page cache."""
    return faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC)


def verify(folder: Path, manifest: dict[str, Any]) -> None:
    for name in ARTIFACTS:
        expected = manifest["artifacts"][name]["sha256"]
        path = folder / name
        if not path.is_file():
            raise CorruptArtifact(f"version {manifest['version']}: {name} is missing")
        if sha256_of(path) != expected:
            raise CorruptArtifact(f"version {manifest['version']}: {name} fails its sha256")
