"""What the served item index's storage costs in recall, against exact search, on the version
bench/serving.py built (or any version folder).

    .venv/bin/python bench/recall.py                       # the newest bench version
    .venv/bin/python bench/recall.py --folder index_data/0000000007

The item index is FAISS HNSW over float32 vectors, kept in its file and mapped read-only
(indexing/artifacts.py): it costs no precision, only the graph's misses. This samples item
rows as queries (similar items: the item itself left out) and user taste vectors (the
content source), searches the served index as the API does (indexing/ann.py) and an exact
inner-product scan of the same vectors, and reports recall@10 and the time per query of
each, one query at a time on one thread, as a request runs them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import faiss
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from indexing import ann  # noqa: E402
from indexing.artifacts import MANIFEST, IndexVersion  # noqa: E402


def recall_at(found: np.ndarray, exact: np.ndarray, k: int) -> float:
    """Mean share of each row's exact top k that `found`'s top k holds."""
    hits = [
        len(set(f[:k].tolist()) & set(e[:k].tolist())) for f, e in zip(found, exact, strict=True)
    ]
    return float(np.mean(hits)) / k


def timed(search: object, queries: np.ndarray, k: int) -> tuple[np.ndarray, list[float]]:
    rows, seconds = [], []
    for query in queries:
        started = time.perf_counter()
        _, found = search(query[None, :], k)  # type: ignore[operator]
        seconds.append(time.perf_counter() - started)
        rows.append(found[0])
    return np.array(rows), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--folder", type=Path, help="a version folder (default: the newest bench one)"
    )
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()
    folder = args.folder or max(
        p for p in (ROOT / ".stack" / "bench" / "index").iterdir() if p.name.isdigit()
    )
    manifest = json.loads((folder / MANIFEST).read_text())
    version = IndexVersion.load(folder, manifest)
    faiss.omp_set_num_threads(1)  # as the API runs a search
    vectors = np.ascontiguousarray(version.item_vectors)
    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(vectors)
    rng = np.random.default_rng(3)
    n = len(version.item_ids)
    items = rng.choice(n, min(args.queries, n), replace=False)
    tasted = np.flatnonzero(np.abs(version.user_vectors).sum(axis=1) > 0)  # else ties only
    users = rng.choice(tasted, min(args.queries, len(tasted)), replace=False)
    index_bytes = (folder / "items.faiss").stat().st_size
    print(f"version {version.version}: {n:,} items, item index {manifest['item_index']}")
    print(f"items.faiss {index_bytes / 2**20:,.0f} MiB ({index_bytes / n:,.0f} bytes per item)")
    k = args.k
    for label, queries, drop_self in (
        ("similar items (item vectors)", vectors[items], True),
        ("content source (user vectors)", np.ascontiguousarray(version.user_vectors[users]), False),
    ):
        wanted = k + 1 if drop_self else k
        served, served_s = timed(
            lambda q, kk: ann.search(version.item_index, q, kk), queries, wanted
        )
        truth, exact_s = timed(exact.search, queries, wanted)
        if drop_self:
            served = np.array(
                [[r for r in row if r != i][:k] for row, i in zip(served, items, strict=True)]
            )
            truth = np.array(
                [[r for r in row if r != i][:k] for row, i in zip(truth, items, strict=True)]
            )
        print(
            f"  {label:32} recall@{k} {recall_at(served, truth, k):.4f}   per query: served "
            f"{1000 * statistics.median(served_s):.2f} ms, exact scan "
            f"{1000 * statistics.median(exact_s):.2f} ms (medians)"
        )


if __name__ == "__main__":
    main()
