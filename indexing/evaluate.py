"""`python -m indexing.evaluate`: the evaluation protocols (indexing/datasets.py), with
baselines, on ml-latest-small as ratings, the same as views only, and Book-Crossing.

In process (default): split, fit a version from the training part exactly as a build does
(tuning on its own holdout included), rank every evaluated user with the API's ranking code,
and fit Pop, ItemKNN and EASE on the same training part. With --http URL: send the training
part of one dataset through the batch endpoints of a running service with an empty database,
build through the API, and score the lists GET /api/v1/recommendations/{user_id} answers
(the baselines are still fitted here).
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
import scipy.sparse as sp

from common.settings import Settings, load_settings
from common.snapshot import Snapshot
from embeddings.encoder import configured
from indexing import baselines, datasets, holdout, sessions
from indexing.build import fit

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
BATCH = 10_000
Figures = dict[str, dict[str, float]]


def baseline_figures(
    train: Snapshot, truth: holdout.Truth, k: int, stars: bool, say: Any = None
) -> Figures:
    """Pop, ItemKNN and EASE on the binary matrix of all training pairs and, for ratings,
    also on the pairs rated 4 and above (the stronger of the two is the bar)."""
    n_users, n_items = len(train.user_ids), len(train.item_ids)
    inputs = {"": np.ones(len(train.kinds), dtype=bool)}
    if stars:
        inputs[" 4+"] = np.array([v is not None and v >= 4 for v in train.values])
    seen = sp.csr_matrix(
        (np.ones(len(train.kinds), dtype=np.float32), (train.user_rows, train.item_rows)),
        shape=(n_users, n_items),
    )
    users = sorted(truth)
    excluded = {u: seen.indices[seen.indptr[u] : seen.indptr[u + 1]].tolist() for u in users}
    results: Figures = {}
    for suffix, mask in inputs.items():
        x = sp.csr_matrix(
            (
                np.ones(int(mask.sum()), dtype=np.float32),
                (train.user_rows[mask], train.item_rows[mask]),
            ),
            shape=(n_users, n_items),
        )
        x.data[:] = 1.0
        popular = baselines.pop(x)
        names = ["Pop", "ItemKNN", *(f"EASE l={lam:g}" for lam in EASE_LAMBDAS)]
        for name in names:
            if say is not None:
                say(f"baseline {name}{suffix}")
            scored = _baseline(name, x, users, popular)
            lists = {u: baselines.top_k(scored[n], excluded[u], k) for n, u in enumerate(users)}
            results[name + suffix] = holdout.scores(lists, truth, k, n_items)
    return results


# EASE at each penalty of a wide grid: the best on the test split is the bar, which no
# build could choose as well.
EASE_LAMBDAS = (25.0, 100.0, 400.0, 1600.0)


def _baseline(
    name: str, x: sp.csr_matrix, users: list[int], popular: baselines.Scores
) -> baselines.Scores:
    if name == "Pop":
        return np.broadcast_to(popular, (len(users), x.shape[1]))
    if name == "ItemKNN":
        return baselines.item_knn(x, users)
    return baselines.ease(x, users, float(name.split("=")[1]))


def in_process(
    settings: Settings, dataset: datasets.Dataset, k: int, session_items: int = 0
) -> tuple[Figures, Figures | None]:
    """The figures of the users' lists and, with `session_items`, of sessions of that many
    items (indexing/sessions.py) ranked by the same version."""
    encoder = configured(settings.embedding)
    vectors = datasets.embed(dataset, encoder, settings.index.data_dir / "evaluation")
    whole, test = datasets.snapshot(dataset, vectors)
    train, truth = holdout.split(whole, settings, test, dataset.positive)
    started = time.monotonic()
    version, tuned = fit(train, settings, _say)
    _say(f"fitted in {time.monotonic() - started:.0f} s; chosen: {tuned.chosen()}")
    version.manifest |= {"version": 0, "data_as_of_epoch": train.as_of.timestamp()}
    figures = holdout.evaluate(
        version, settings, truth, k=k, progress=lambda name: _say(f"ranking: {name}")
    )
    figures |= baseline_figures(train, truth, k, dataset.kinds[0] == "rating", _say)
    if not session_items:
        return figures, None
    return figures, sessions.evaluate(
        version, settings, train, truth, k=k, size=session_items, say=_say
    )


def over_http(settings: Settings, dataset: datasets.Dataset, k: int, url: str, key: str) -> Figures:
    import httpx

    blank = np.zeros((len(dataset.item_ids), 1), dtype=np.float32)
    whole, test = datasets.snapshot(dataset, blank)
    train, truth = holdout.split(whole, settings, test, dataset.positive)
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=300) as api:
        items = [
            {"item_id": i, "title": t, "category": c, "tags": g, "description": d}
            for i, t, c, g, d in zip(
                dataset.item_ids,
                dataset.titles,
                dataset.categories,
                dataset.tags,
                dataset.descriptions,
                strict=True,
            )
        ]
        for chunk in _chunks(items):
            _ok(api.post("/api/v1/items/batch", json={"items": chunk}))
        _say(f"sent {len(items)} items")
        rows = []
        for u, i, kind, v, t in zip(
            train.user_rows, train.item_rows, train.kinds, train.values, train.times, strict=True
        ):
            row = {
                "user_id": train.user_ids[u],
                "item_id": train.item_ids[i],
                "type": kind,
                "timestamp": datetime.fromtimestamp(t, UTC).isoformat(),
                "event_id": f"{dataset.name}-{train.user_ids[u]}-{train.item_ids[i]}-{int(t)}",
            }
            if v is not None:
                row["value"] = v
            rows.append(row)
        for chunk in _chunks(rows):
            _ok(api.post("/api/v1/interactions/batch", json={"interactions": chunk}))
        _say(f"sent {len(rows)} training interactions")
        build = _ok(api.post("/api/v1/index/builds", json={"reason": "evaluation", "force": True}))
        state = _wait_for_build(api, build["build_id"])
        _say(f"built version {state['version']} ({state['stage']})")
        if state["stage"] == "rejected":
            _ok(api.post(f"/api/v1/index/versions/{state['version']}/activate"))
        _wait_until_served(api, state["version"])
        row_of = {item_id: n for n, item_id in enumerate(train.item_ids)}
        lists, stale = {}, 0
        for user in truth:
            answer = _ok(
                api.get(f"/api/v1/recommendations/{train.user_ids[user]}", params={"limit": k})
            )
            stale += answer["index_version"] != state["version"]
            lists[user] = [row_of[i["item_id"]] for i in answer["items"] if i["item_id"] in row_of]
        if stale:
            _say(f"{stale} answers came from another version than {state['version']}")
    figures = {"hybrid (HTTP)": holdout.scores(lists, truth, k, len(dataset.item_ids))}
    _say("fitting baselines")
    return figures | baseline_figures(train, truth, k, dataset.kinds[0] == "rating")


def _wait_for_build(api: Any, build_id: str) -> dict[str, Any]:
    while True:
        state: dict[str, Any] = _ok(api.get(f"/api/v1/index/builds/{build_id}"))
        if state["state"] == "succeeded":
            return state
        if state["state"] == "failed":
            raise SystemExit(f"build {build_id} failed: {state.get('error')}")
        _say(f"build {state['state']} {state['stage']} {state['progress']:.2f}")
        time.sleep(2.0)


def _wait_until_served(api: Any, version: int, seconds: float = 300.0) -> None:
    """Until the service answers from `version`: the build's worker has announced it, but
    the API loads it in its own time, and answers meanwhile come from the one before."""
    deadline = time.monotonic() + seconds
    while (served := api.get("/health/ready").json().get("index_version")) != version:
        if time.monotonic() > deadline:
            raise SystemExit(f"the service still serves version {served}, not {version}")
        time.sleep(0.5)


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


def table(figures: Figures, k: int) -> str:
    columns = ["users", f"recall@{k}", f"ndcg@{k}", "mrr", "coverage"]
    lines = [f"{'':16}" + "".join(f"{c:>12}" for c in columns)]
    for name, row in figures.items():
        cells = [f"{int(row['users']):>12}"] + [f"{row[c]:>12.4f}" for c in columns[1:]]
        lines.append(f"{name:16}" + "".join(cells))
    best = max(
        (row[f"ndcg@{k}"] for name, row in figures.items() if name.split()[0] in BASELINES),
        default=0.0,
    )
    ours = next((row[f"ndcg@{k}"] for name, row in figures.items() if "hybrid" in name), None)
    if ours is not None and best > 0:
        lines.append(f"hybrid / best baseline NDCG@{k}: {ours / best:.3f}")
    return "\n".join(lines)


BASELINES = ("Pop", "ItemKNN", "EASE")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m indexing.evaluate", description=__doc__)
    parser.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        help="folder of ml-latest-small/, book-crossing/, retailrocket/",
    )
    parser.add_argument(
        "--dataset", choices=datasets.NAMES, action="append", help="default: all (in process)"
    )
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument(
        "--sessions",
        type=int,
        default=0,
        metavar="N",
        help="also score sessions of each user's newest N training items (next-item "
        "prediction, as POST /api/v1/recommendations ranks them), beside the baselines",
    )
    parser.add_argument("--http", metavar="URL", help="evaluate a running service instead")
    parser.add_argument("--key", default=os.environ.get("ADMIN_API_KEY"), help="admin API key")
    args = parser.parse_args(argv)
    settings = load_settings()
    names = args.dataset or list(datasets.NAMES)
    if args.http and len(names) != 1:
        raise SystemExit("--http evaluates one --dataset, against a service with an empty database")
    if args.http and not args.key:
        raise SystemExit("--http needs an admin key (--key or ADMIN_API_KEY)")
    for name in names:
        dataset = datasets.load(name, args.data)
        session_figures = None
        if args.http:
            figures = over_http(settings, dataset, args.k, args.http, args.key)
        else:
            figures, session_figures = in_process(settings, dataset, args.k, args.sessions)
        print(f"## {name}\n{table(figures, args.k)}\n", flush=True)
        if session_figures is not None:
            heading = f"## {name}, sessions of {args.sessions}"
            print(f"{heading}\n{table(session_figures, args.k)}\n", flush=True)


if __name__ == "__main__":
    main()
