"""`python -m indexing.evaluate`: the evaluation protocol on MovieLens, with baselines.

In process (default): split, assemble a version from the training part exactly as a build
does, rank every evaluated user with the API's ranking code, and fit Pop, ItemKNN and EASE on
the same training part. With --http URL: send the training part through the batch endpoints
of a running service, build through the API, and score the lists GET
/api/v1/recommendations/{user_id} answers (the baselines are still fitted here).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from common.settings import Settings, load_settings
from embeddings.encoder import make_encoder
from indexing import baselines, collaborative, evaluation, movielens
from indexing.build import assemble, history_matrix
from indexing.profiles import type_weights
from indexing.snapshot import Snapshot

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ml-latest-small"
BATCH = 10_000


def baseline_figures(
    train: Snapshot, truth: evaluation.Truth, settings: Settings, k: int
) -> dict[str, dict[str, float]]:
    history = history_matrix(train, type_weights(train.kinds, train.values, settings.interactions))
    liked = collaborative.positives(history, settings.ranking.positive_min)
    seen = {u: history.indices[history.indptr[u] : history.indptr[u + 1]].tolist() for u in truth}
    n_items = liked.shape[1]
    popular = baselines.pop(liked)
    results = {"Pop": {u: baselines.top_k(popular, seen[u], k) for u in truth}}
    for name, fitted in (("ItemKNN", baselines.item_knn(liked)), ("EASE", baselines.ease(liked))):
        results[name] = {u: baselines.top_k(fitted[u], seen[u], k) for u in truth}
    return {name: evaluation.scores(lists, truth, k, n_items) for name, lists in results.items()}


def in_process(settings: Settings, movies: movielens.Movies, k: int) -> dict[str, dict[str, float]]:
    encoder = make_encoder(settings.embedding.model, settings.embedding.batch_size)
    vectors = movielens.embed(movies, encoder, settings.index.data_dir / "evaluation")
    train, truth = evaluation.split(movielens.snapshot(movies, vectors), settings)
    version = assemble(train, settings)
    figures = evaluation.evaluate(
        version, settings, truth, k=k, progress=lambda name: _say(f"ranking: {name}")
    )
    _say("fitting baselines")
    return figures | baseline_figures(train, truth, settings, k)


def over_http(
    settings: Settings, movies: movielens.Movies, k: int, url: str, key: str
) -> dict[str, dict[str, float]]:
    import httpx

    blank = np.zeros((len(movies.item_ids), 1), dtype=np.float32)
    train, truth = evaluation.split(movielens.snapshot(movies, blank), settings)
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120) as api:
        items = [
            {"item_id": i, "title": t, "category": c, "tags": g}
            for i, t, c, g in zip(
                movies.item_ids, movies.titles, movies.categories, movies.genres, strict=True
            )
        ]
        for chunk in _chunks(items):
            _ok(api.post("/api/v1/items/batch", json={"items": chunk}))
        _say(f"sent {len(items)} items")
        rows = [
            {
                "user_id": train.user_ids[u],
                "item_id": train.item_ids[i],
                "type": "rating",
                "value": v,
                "timestamp": datetime.fromtimestamp(t, UTC).isoformat(),
                "event_id": f"movielens-{train.user_ids[u]}-{train.item_ids[i]}-{int(t)}",
            }
            for u, i, v, t in zip(
                train.user_rows, train.item_rows, train.values, train.times, strict=True
            )
        ]
        for chunk in _chunks(rows):
            _ok(api.post("/api/v1/interactions/batch", json={"interactions": chunk}))
        _say(f"sent {len(rows)} training ratings")
        build = _ok(api.post("/api/v1/index/builds", json={"reason": "evaluation", "force": True}))
        state = _wait_for_build(api, build["build_id"])
        _say(f"built version {state['version']}")
        row_of = {item_id: n for n, item_id in enumerate(train.item_ids)}
        lists = {}
        for user in truth:
            answer = _ok(
                api.get(f"/api/v1/recommendations/{train.user_ids[user]}", params={"limit": k})
            )
            lists[user] = [row_of[i["item_id"]] for i in answer["items"] if i["item_id"] in row_of]
    figures = {"hybrid (HTTP)": evaluation.scores(lists, truth, k, len(movies.item_ids))}
    _say("fitting baselines")
    return figures | baseline_figures(train, truth, settings, k)


def _wait_for_build(api: Any, build_id: str) -> dict[str, Any]:
    while True:
        state: dict[str, Any] = _ok(api.get(f"/api/v1/index/builds/{build_id}"))
        if state["state"] == "succeeded":
            return state
        if state["state"] == "failed":
            raise SystemExit(f"build {build_id} failed: {state.get('error')}")
        _say(f"build {state['state']} {state['stage']} {state['progress']:.2f}")
        time.sleep(2.0)


def _chunks(rows: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), BATCH):
        yield rows[start : start + BATCH]


def _ok(answer: Any) -> Any:
    if answer.status_code >= 400:
        raise SystemExit(
            f"{answer.request.method} {answer.request.url}: {answer.status_code} {answer.text}"
        )
    return answer.json()


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def table(figures: dict[str, dict[str, float]], k: int) -> str:
    columns = ["users", f"recall@{k}", f"ndcg@{k}", "mrr", "coverage"]
    lines = [f"{'':16}" + "".join(f"{c:>12}" for c in columns)]
    for name, row in figures.items():
        cells = [f"{int(row['users']):>12}"] + [f"{row[c]:>12.4f}" for c in columns[1:]]
        lines.append(f"{name:16}" + "".join(cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m indexing.evaluate", description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="ml-latest-small folder")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--http", metavar="URL", help="evaluate a running service instead")
    parser.add_argument("--key", default=os.environ.get("ADMIN_API_KEY"), help="admin API key")
    args = parser.parse_args(argv)
    settings = load_settings()
    movies = movielens.read(args.data)
    if args.http:
        if not args.key:
            raise SystemExit("--http needs an admin key (--key or ADMIN_API_KEY)")
        figures = over_http(settings, movies, args.k, args.http, args.key)
    else:
        figures = in_process(settings, movies, args.k)
    print(table(figures, args.k))


if __name__ == "__main__":
    main()
