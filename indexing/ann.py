"""FAISS indexes over L2-normalised vectors: inner product is cosine similarity.

Exact search (IndexFlatIP) below a size threshold, where a scan is fast and perfect; HNSW
(Malkov & Yashunin, 2018) at or above it. The chosen parameters go into the manifest.
"""

from __future__ import annotations

from typing import Any

import faiss
import numpy as np
import numpy.typing as npt

from common.settings import IndexSettings
from embeddings.encoder import Vectors


def build(vectors: Vectors, settings: IndexSettings, exact: bool = False) -> Any:
    """An index holding `vectors` (n, d) float32 at ids 0..n-1 (`exact`: whatever n is)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dimension = vectors.shape
    if exact or n < settings.exact_below:
        index: Any = faiss.IndexFlatIP(dimension)
    else:
        index = faiss.IndexHNSWFlat(dimension, settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = settings.hnsw_ef_construction
        index.hnsw.efSearch = settings.hnsw_ef_search
    if n:
        index.add(vectors)
    return index


def describe(index: Any, settings: IndexSettings) -> dict[str, Any]:
    """The parameters of an index, as the manifest records them."""
    params: dict[str, Any] = {
        "metric": "inner_product",
        "dimension": index.d,
        "count": index.ntotal,
    }
    if isinstance(index, faiss.IndexHNSWFlat):
        params |= {
            "type": "hnsw",
            "m": settings.hnsw_m,
            "ef_construction": index.hnsw.efConstruction,
            "ef_search": index.hnsw.efSearch,
        }
    else:
        params["type"] = "flat"
    return params


def search(
    index: Any, queries: Vectors, k: int, within: Any = None, ef: int | None = None
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """Top-k (scores, ids) per query row; ids are -1 where fewer than k exist. `within`, a
    FAISS ID selector, keeps to its ids: HNSW still walks the whole graph but returns only
    those, so a subset's nearest cost a search, not a scan of the subset. `ef`: the HNSW
    beam instead of the index's own (never below k)."""
    k = max(1, min(k, index.ntotal)) if index.ntotal else 1
    if index.ntotal == 0:
        empty = np.zeros((len(queries), 0))
        return empty.astype(np.float32), empty.astype(np.int64)
    hnsw = isinstance(index, faiss.IndexHNSWFlat)
    params: Any = None
    beam: int = index.hnsw.efSearch if hnsw and ef is None else (ef or 0)
    if hnsw and (beam != index.hnsw.efSearch or beam < k or within is not None):
        params = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]  # stub lags
        params.efSearch = max(k, beam)
    elif within is not None:
        params = faiss.SearchParameters()
    if within is not None:
        params.sel = within
    vectors = np.ascontiguousarray(queries, dtype=np.float32)
    if params is None:
        scores, ids = index.search(vectors, k)
    else:
        scores, ids = index.search(vectors, k, params=params)
    return scores, ids


# Fewer rows than this are scanned rather than searched for (as `build` scans a small index):
# a scan of 5,000 rows of 384 floats is a fraction of a millisecond.
SCAN_BELOW = 5_000
# A subset holding less than this share of the index is scanned too: a graph search kept to
# a share s of the rows it walks must walk some k / s of them to find k, which costs more
# than a scan below about 3% (at 1M items of 384 floats, k = 225: a scan of 2% took 10 ms, a
# search 34 ms; at 5%, 30 ms against 10 ms).
SCAN_SHARE = 0.03
# The widest beam a search kept to a subset is given.
MAX_BEAM = 16_384


def search_among(
    index: Any,
    query: npt.NDArray[np.float32],
    k: int,
    rows: npt.NDArray[np.int64],
    within: Any,
    ef: int | None = None,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """Top-k (scores, ids) of one query among `rows` (sorted ids of the index), best first,
    ties by id: a scan of their vectors where they are few, else a search kept to them by
    `within` (a FAISS selector of the same ids, made on first use), so the work stays
    bounded whether the subset is small or large. A search on a few rows of a large graph
    would walk past most of them: a subset under SCAN_SHARE of the index is scanned, a
    larger one searched with a beam as wide as its share asks for, and one whose search
    came back short is scanned."""
    if len(rows) < max(SCAN_BELOW, SCAN_SHARE * index.ntotal):
        return _scan(index, query, k, rows)
    # A beam of k / share: the rows a walk passes before it has met k of the subset's.
    beam = max(ef or 0, min(MAX_BEAM, int(k * index.ntotal / len(rows))))
    scores, ids = search(index, query[None, :], k, within(), beam)
    keep = ids[0] >= 0
    if keep.sum() < min(k, len(rows)):
        return _scan(index, query, k, rows)
    return scores[0][keep], ids[0][keep]


# Rows a scan gathers at a time: a gather of all of them at once copies tens of megabytes
# for one query (a scan of 50,000 rows of 384 floats took 27 ms whole, 17 ms in pieces).
SCAN_PIECE = 4_096


def _scan(
    index: Any, query: npt.NDArray[np.float32], k: int, rows: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    vectors = vectors_of(index)
    scores = np.empty(len(rows), dtype=np.float32)
    for start in range(0, len(rows), SCAN_PIECE):
        piece = rows[start : start + SCAN_PIECE]
        scores[start : start + len(piece)] = vectors[piece] @ query
    if len(rows) > k:  # the best k, then sorted: not a sort of every row
        part = np.argpartition(-scores, k - 1)[:k]
        rows, scores = rows[part], scores[part]
    best = np.lexsort((rows, -scores))
    return scores[best].astype(np.float32), rows[best]


def vectors_of(index: Any) -> Vectors:
    """The stored vectors, (ntotal, d), as a read-only view into the index's own memory
    (flat and HNSW-flat indexes keep them exactly): no second copy. Valid while `index` is."""
    if index.ntotal == 0:
        return np.zeros((0, index.d), dtype=np.float32)
    flat: Any = index
    if isinstance(index, faiss.IndexHNSWFlat):
        flat = faiss.downcast_index(index.storage)
    view: Vectors = faiss.rev_swig_ptr(flat.get_xb(), index.ntotal * index.d).reshape(
        index.ntotal, index.d
    )
    view.flags.writeable = False
    return view
