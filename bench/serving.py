"""Serving and build figures at catalog scale, on this machine, in one run.

    .venv/bin/python bench/serving.py                  # 100k items, as the targets are stated
    .venv/bin/python bench/serving.py --items 20000    # quicker

It uses its own database (`recs_bench`), Redis database 13 and bucket `recs-bench` on the
local servers (started if missing), so it never touches `make run`'s data. Steps:

1. Generate a catalog (titles from genre word lists) and interaction histories; write them
   straight to PostgreSQL (ingest has its own benchmark).
2. Build a version at 10% and at 100% of the catalog with the hashing encoder at the real
   model's dimension (384): the index, profile and upload work of a build, without the
   model's embedding time, which step 5 measures on its own. The trending lists are
   published first, as the refresh job keeps them: the build's lists follow them. A build
   ranks the lists of the users its precompute had no time for before it activates the
   version, in parts, for up to INDEX_FILL_SECONDS (its "ranking lists" stage); whatever
   it left is then ranked in parts as the workers rank it once a version is live.
3. Start the API (one uvicorn process) on that version and drive it at a fixed concurrency
   with a small keep-alive HTTP client: a trivial endpoint (/health), similar items and
   personalised recommendations, each for a fixed time. Latency is per request, end to end.
   "personalised" asks for users idle since the build (answered from the lists the build
   ranked), "personalised, acted" for 1,000 users who viewed an item after it (answered
   from the lists the API ranked after their profile refresh, service/lists.py). "A/A
   test" asks under an experiment whose two variants rank as served (answered from the
   same kept lists), "A/B test" under one whose second variant ranks otherwise (its users
   ranked live). The business rules' rows ask the acted users' lists with a filter that
   50%, 5% and 1% of the catalog passes, and under a scenario with two boosters, beside
   their lists ranked live unfiltered ("ranked live, acted": seen items kept, which no kept
   list holds); then it counts how often a kept list answered each. With --rebuild, the
   same data is then built again while the API serves,
   and personalised answers are measured the moment the new version goes live.
4. Read the API process's resident memory.
5. Embedding throughput: the real model's raw `encode` on N item texts, beside a Celery
   worker embedding the same N items (its model warmed first), in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from redis.asyncio import Redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common.models import InteractionIn, ItemIn  # noqa: E402
from common.settings import load_settings  # noqa: E402
from common.text import item_labels, item_text  # noqa: E402
from devstack import demo  # noqa: E402
from devstack.servers import (  # noqa: E402
    api_server,
    bring_up,
    celery_worker,
    port_open,
    stop_process,
)
from embeddings.encoder import LABELLED, make_encoder  # noqa: E402
from storage import activity, builds, catalog  # noqa: E402
from storage.blob import open_store  # noqa: E402
from storage.db import create_pool  # noqa: E402
from storage.events import ranked_key  # noqa: E402
from workers.context import BuildContext  # noqa: E402
from workers.lists import fill_lists  # noqa: E402
from workers.pipeline import Outcome, build_version, refresh_trending  # noqa: E402

ADMIN = "bench-admin-key-0123456789"
CHUNK = 10_000


def make_items(count: int, seed: int = 1) -> list[ItemIn]:
    rng = random.Random(seed)
    genres = list(demo.GENRES.items())
    items = []
    for n in range(count):
        genre, spec = genres[n % len(genres)]
        words = rng.sample(spec["words"], 2)
        items.append(
            ItemIn(
                item_id=f"item-{n}",
                title=f"{rng.choice(demo.QUALIFIERS)} {words[0]} {words[1]} {n}",
                description=spec["blurb"],
                category=genre,
                tags=rng.sample(spec["tags"], 3),
                # For the business rules' rows: a filter on `bucket` passes a known share.
                attributes={"bucket": n % 100, "in_stock": n % 3 != 0},
            )
        )
    return items


def interaction_chunks(
    items: int, users: int, per_user: int, keep: Callable[[int], bool], seed: int = 2
) -> Iterator[list[InteractionIn]]:
    """Every user's `per_user` interactions, 80% within one favourite stripe of the catalog
    (its items the more often the earlier in the stripe: a stripe's favourites, which a
    build can learn and its quality gate can tell from popularity), in lists of at most
    CHUNK; only those whose item row passes `keep`. The same seed makes the same rows, so
    two passes (early items, then the rest) need no list of them all."""
    rng = random.Random(seed)
    kinds = ["view", "click", "like", "purchase"]
    rows: list[InteractionIn] = []
    # Each user's history runs an hour a step up to now: the build's holdout takes each
    # user's newest 20%, which needs distinct times (rows stored at one instant tie, and a
    # tie is held out whole).
    now = datetime.now(UTC)
    for u in range(users):
        favourite = rng.randrange(8)
        for step in range(per_user):
            stripe = items // 8
            n = (
                min(int(rng.expovariate(10 / stripe)), stripe - 1) * 8 + favourite
                if rng.random() < 0.8
                else rng.randrange(items)
            )
            kind = rng.choice(kinds)
            if keep(n):
                # Valid by construction: model_construct skips validation, which would
                # take longer than the rest of the load at 10M rows.
                at = now - timedelta(hours=per_user - step, seconds=u % 3600)
                row = {"user_id": f"user-{u}", "item_id": f"item-{n}", "type": kind}
                rows.append(InteractionIn.model_construct(**row, timestamp=at))
                if len(rows) == CHUNK:
                    yield rows
                    rows = []
    if rows:
        yield rows


async def load_items(pool: asyncpg.Pool, items: list[ItemIn]) -> None:
    for start in range(0, len(items), CHUNK):
        await catalog.upsert_items(pool, items[start : start + CHUNK])


async def load_interactions(pool: asyncpg.Pool, chunks: Iterable[list[InteractionIn]]) -> int:
    count = 0
    for rows in chunks:
        await activity.record_interactions(pool, rows)
        count += len(rows)
    return count


class Stages:
    """Build events as they happen, each with the wall time and the peak resident memory
    since the one before (the time and the memory the work ending in it took). The peak
    is the process's: writing 5 to /proc/self/clear_refs resets it (VmHWM) at each event."""

    def __init__(self) -> None:
        self.stage = ""
        self.started = time.perf_counter()
        self._reset()

    @staticmethod
    def _peak() -> float:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    @staticmethod
    def _reset() -> None:
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")

    def event(self, what: str) -> None:
        now = time.perf_counter()
        print(f"  {now - self.started:7.1f}s  peak {self._peak():6.0f} MiB  {what}", flush=True)
        self.started = now
        self._reset()


class StageLog(logging.Handler):
    def __init__(self, stages: Stages) -> None:
        super().__init__()
        self.stages = stages

    def emit(self, record: logging.LogRecord) -> None:
        self.stages.event(record.getMessage())


class Timed(BuildContext):
    """A build's context that prints each stage as it begins, with the time and memory the
    one before it took."""

    def __init__(self, stages: Stages, redis: Redis, namespace: str) -> None:
        super().__init__(redis=redis, namespace=namespace)
        self.timer = stages

    async def report(self, stage: str, progress: float) -> None:
        if stage != self.timer.stage:
            self.timer.event(f"{self.timer.stage or 'start'} done; {stage} begins")
            self.timer.stage = stage
        await super().report(stage, progress)


async def timed_build(pool: asyncpg.Pool, settings: Any) -> tuple[float, Outcome]:
    stages = Stages()
    handler = StageLog(stages)
    loggers = [logging.getLogger(name) for name in ("workers.pipeline", "workers.lists")]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    redis = Redis.from_url(settings.redis.url)
    try:
        # What the refresh job keeps published, and the build's lists follow.
        await refresh_trending(pool, redis, settings, settings.index.trending_window_hours)
        stages.event("trending lists published, as the refresh job publishes them")
        started = time.perf_counter()
        try:
            outcome = await build_version(
                pool,
                open_store(settings),
                make_encoder("hashing-384"),
                settings,
                # The trending lists published above are read through its Redis.
                Timed(stages, redis, settings.event_namespace),
                force=True,
            )
        finally:
            stages.event(f"{stages.stage} done; build finished")
            for logger in loggers:
                logger.removeHandler(handler)
    finally:
        await redis.aclose()
    assert outcome.version is not None
    return time.perf_counter() - started, outcome


async def timed_fill(pool: asyncpg.Pool, settings: Any, outcome: Outcome) -> None:
    """What the workers do once a build is live, where the build left lists unranked (more
    than INDEX_FILL_SECONDS of them): rank them part by part (workers/lists.py); the API,
    started after, reads in every part."""
    if outcome.filling is None:
        return
    redis = Redis.from_url(settings.redis.url)
    stages = Stages()
    announced = BuildContext(redis=redis, namespace=settings.event_namespace)
    try:
        users = await fill_lists(pool, open_store(settings), settings, outcome.filling, announced)
    finally:
        await redis.aclose()
    stages.event(f"lists ranked after the build went live: {users:,} users")


class Client:
    """One keep-alive HTTP/1.1 connection; light enough not to be the bottleneck."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str, headers: str = "") -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Authorization: Bearer {ADMIN}\r\n{headers}\r\n".encode()
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        return status, await self.reader.readexactly(length)


async def load(
    host: str, port: int, paths: list[str], concurrency: int, seconds: float, headers: str = ""
) -> dict[str, float]:
    latencies: list[float] = []
    cached = 0
    errors = 0
    deadline = time.perf_counter() + seconds

    async def user(n: int) -> None:
        nonlocal cached, errors
        client = Client(host, port)
        rng = random.Random(n)
        while time.perf_counter() < deadline:
            path = rng.choice(paths)
            started = time.perf_counter()
            status, body = await client.get(path, headers)
            latencies.append(time.perf_counter() - started)
            errors += status != 200
            cached += b'"cached":true' in body

    started = time.perf_counter()
    await asyncio.gather(*(user(n) for n in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
        "cached": cached / max(1, len(latencies)),
        "errors": errors,
    }


def memory_mib(pid: int) -> tuple[float, float]:
    """Resident and proportional-set memory of a process and its children (uvicorn's
    workers), in MiB. Pages several processes share (a mapped index file) count whole in
    each one's RSS, and split between them in PSS."""
    rss = pss = 0.0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines())
            if int(fields["Pid"]) != pid and int(fields["PPid"]) != pid:
                continue
            rss += int(fields.get("VmRSS", "0 kB").split()[0]) / 1024
            for line in (status.parent / "smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1]) / 1024
        except (OSError, ValueError, KeyError):
            continue
    return rss, pss


async def embedding_throughput(
    pool: asyncpg.Pool, env: dict[str, str], count: int, worker_counts: list[int], threads: int
) -> dict[str, float]:
    """Raw encode of `count` items (each item's text and labels, as embed_items encodes
    them), then the same number of new items embedded through 1, 2, ... warmed workers: one
    task with every id, which the first worker shares out in pieces (workers/pipeline.py,
    embed_missing)."""
    from workers.factory import EMBED_TASK, make_celery

    model = env.get("BENCH_EMBEDDING_MODEL", "all-MiniLM-L6-v2")
    encoder = make_encoder("all-MiniLM-L6-v2")
    base = make_items(count, seed=99)
    texts = [item_text(i.title, i.description, i.category, i.tags) for i in base]
    labels = [item_labels(i.category, i.tags) for i in base]
    encoder.encode(texts[:64])  # load the model before timing
    started = time.perf_counter()
    encoder.encode(texts)
    encoder.encode([label for label in labels if label])
    figures = {"raw_per_s": count / (time.perf_counter() - started)}
    celery = make_celery(load_settings())

    async def embedded(ids: list[str]) -> int:
        return int(
            await pool.fetchval(
                "SELECT count(*) FROM item_embeddings WHERE encoder = $1 AND item_id = ANY($2)",
                model + LABELLED,
                ids,
            )
        )

    for workers in worker_counts:
        run = f"{workers}-{time.time_ns():x}"  # new ids each run: nothing embedded yet
        items = [i.model_copy(update={"item_id": f"embed{run}-{i.item_id}"}) for i in base]
        await catalog.upsert_items(pool, items)
        started_workers = [
            subprocess.Popen(
                celery_worker(
                    "--loglevel=WARNING",
                    "--without-mingle",
                    "--without-gossip",
                    f"--hostname=bench{n}@%h",
                ),
                cwd=ROOT,
                env=env | {"EMBEDDING_MODEL": model, "EMBEDDING_THREADS": str(threads)},
                start_new_session=True,
            )
            for n in range(workers)
        ]
        try:
            # Each worker embeds one item first, so every model is loaded before timing.
            warm = [[items[n].item_id] for n in range(workers)]
            for ids in warm:
                celery.send_task(EMBED_TASK, args=[ids])
            while await embedded([i for ids in warm for i in ids]) < workers:
                await asyncio.sleep(0.1)
            rest = [i.item_id for i in items[workers:]]
            started = time.perf_counter()
            celery.send_task(EMBED_TASK, args=[rest])
            # Polled twice a second: more often, the polling itself takes CPU from the model.
            while await embedded(rest) < len(rest):
                await asyncio.sleep(0.5)
            figures[f"workers_{workers}_per_s"] = len(rest) / (time.perf_counter() - started)
        finally:
            for process in started_workers:
                stop_process(process, grace=30)  # type: ignore[arg-type]
    return figures


async def measure(
    args: argparse.Namespace,
    targets: dict[str, tuple[list[str], str]],
    *,
    warm: bool = True,
) -> None:
    """Each endpoint for `args.rounds` rounds, printed as a table and against /health."""
    if warm:
        for paths, headers in targets.values():  # warm up: first requests load lazily
            await load("127.0.0.1", args.port, paths, 4, 1.0, headers)
    print(
        f"\nconcurrency {args.concurrency}, {args.seconds:.0f}s per round, "
        f"{args.rounds} rounds; median of rounds (min..max)"
    )
    print(f"{'endpoint':22}{'req/s':>18}{'p50 ms':>18}{'p99 ms':>18}{'cached':>8}{'errors':>7}")
    # Rounds go through the endpoints in turn, so that the machine's drift over a run
    # falls on every endpoint alike, and each ratio compares figures of the same round.
    rounds: dict[str, list[dict[str, float]]] = {label: [] for label in targets}
    for _ in range(args.rounds):
        for label, (paths, headers) in targets.items():
            if warm:
                # A second of the same requests first: the cached row's entries live a
                # minute, and the other rows' rounds take longer than that.
                await load("127.0.0.1", args.port, paths, 4, 1.0, headers)
            figures = await load(
                "127.0.0.1", args.port, paths, args.concurrency, args.seconds, headers
            )
            rounds[label].append(figures)
    for label, done in rounds.items():

        def cell(key: str, fmt: str, rs: list[dict[str, float]] = done) -> str:
            values = [r[key] for r in rs]
            return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}..{max(values):{fmt}})"

        print(
            f"{label:22}{cell('rps', '.0f'):>18}{cell('p50_ms', '.1f'):>18}"
            f"{cell('p99_ms', '.1f'):>18}{statistics.median(r['cached'] for r in done):>8.0%}"
            f"{sum(int(r['errors']) for r in done):>7}",
            flush=True,
        )
    trivial = rounds.get("trivial /health")
    if trivial:
        print("\nagainst the trivial endpoint in the same round, median (min..max):")
        for label, done in rounds.items():
            rps = [r["rps"] / t["rps"] for r, t in zip(done, trivial, strict=True)]
            p99 = [r["p99_ms"] / t["p99_ms"] for r, t in zip(done, trivial, strict=True)]
            print(
                f"  {label:22} req/s {statistics.median(rps):6.1%} "
                f"({min(rps):.1%}..{max(rps):.1%})   p99 {statistics.median(p99):5.2f}x "
                f"({min(p99):.2f}..{max(p99):.2f})",
                flush=True,
            )


def create_experiment(base: str, experiment_id: str, variants: list[dict[str, Any]]) -> None:
    """Start an experiment (or find it there from an earlier run)."""
    created = httpx.post(
        f"{base}/api/v1/experiments",
        json={"experiment_id": experiment_id, "variants": variants},
        headers={"Authorization": f"Bearer {ADMIN}"},
    )
    if created.status_code not in (201, 409):
        raise RuntimeError(f"could not create experiment {experiment_id}: {created.text}")


RULES_ROWS = ("ranked live, acted", "filter 50%", "filter 5%", "filter 1%", "scenario 2 boosts")


def rules_rows(base: str, active: list[str]) -> dict[str, tuple[list[str], str]]:
    """The business rules' rows (see the module's docstring): acted users, asked afresh."""
    boosts = [
        {"filter": "attributes.in_stock = true", "weight": 2},
        {"filter": 'category = "Comedy" or attributes.bucket < 10', "weight": 1.5},
    ]
    stored = httpx.put(
        f"{base}/api/v1/scenarios/bench-boosted",
        json={"boosters": boosts},
        headers={"Authorization": f"Bearer {ADMIN}"},
    )
    stored.raise_for_status()
    fresh = "Cache-Control: no-cache\r\n"
    rng = random.Random(11)

    def asked(query: str) -> tuple[list[str], str]:
        users = [rng.choice(active) for _ in range(5_000)]
        return [f"/api/v1/recommendations/{u}?limit=10&{query}" for u in users], fresh

    return {
        "ranked live, acted": asked("exclude_seen=false"),
        "filter 50%": asked("filter=attributes.bucket%20%3C%2050"),
        "filter 5%": asked("filter=attributes.bucket%20%3C%205"),
        "filter 1%": asked("filter=attributes.bucket%20%3C%201"),
        "scenario 2 boosts": asked("scenario=bench-boosted"),
    }


async def kept_share(port: int, rows: dict[str, tuple[list[str], str]]) -> None:
    """How often a kept list answered each row's requests: the API's own count of which
    source answered (recs_list_sources_total), read before and after 300 of them."""
    if not rows:
        return

    def counts() -> dict[str, float]:
        found: dict[str, float] = {}
        for line in httpx.get(f"http://127.0.0.1:{port}/metrics").text.splitlines():
            if line.startswith("recs_list_sources_total{"):
                labels, value = line.rsplit(" ", 1)
                found[labels] = float(value)
        return found

    print("\nanswered from a kept list, and answers short of 10 items (of 300 requests each):")
    client = Client("127.0.0.1", port)
    for label, (paths, headers) in rows.items():
        before = counts()
        short = 0
        for path in paths[:300]:
            _, body = await client.get(path, headers)
            short += body.count(b'"item_id"') < 10
        after = counts()
        moved = {k: after[k] - before.get(k, 0.0) for k in after}
        kept = sum(v for k, v in moved.items() if 'source="kept list"' in k)
        share = kept / max(1.0, sum(moved.values()))
        print(f"  {label:22} kept {share:6.1%}   short {short}", flush=True)


async def until_served(
    base: str, other_than: int | None, api: subprocess.Popen[bytes], api_log: Path
) -> int:
    """The version the API serves once it serves one other than `other_than`."""
    deadline = time.monotonic() + 900  # a 1M-item version takes minutes to verify and load
    while True:
        try:
            served = httpx.get(f"{base}/health/ready", timeout=2).json()["index_version"]
            if served and served != other_than:
                return int(served)
        except (httpx.HTTPError, KeyError, ValueError):
            pass
        if time.monotonic() > deadline or api.poll() is not None:
            raise RuntimeError(
                f"the API did not serve a new version:\n{api_log.read_text()[-3000:]}"
            )
        await asyncio.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--per-user", type=int, default=25)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--embed", type=int, default=2_000, help="texts for step 5 (0 skips)")
    parser.add_argument(
        "--embed-workers", default="1,2", help="worker counts for step 5, comma-separated"
    )
    parser.add_argument(
        "--embed-threads", type=int, default=0, help="EMBEDDING_THREADS of step 5's workers"
    )
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--api-workers", type=int, default=1, help="uvicorn processes")
    parser.add_argument(
        "--only", help="run only endpoints whose label contains one of these (comma-separated)"
    )
    parser.add_argument(
        "--rebuild",
        action="store_true",
        help="then rebuild while serving, and measure personalised answers right after the "
        "new version goes live",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="serve the version an earlier run of the same size left (no data, no build)",
    )
    parser.add_argument(
        "--load-only",
        action="store_true",
        help="generate and load the data, then stop (a later --keep-data run builds on it)",
    )
    parser.add_argument(
        "--keep-data",
        action="store_true",
        help="build once on the data an earlier run of the same size loaded, then serve it",
    )
    parser.add_argument(
        "--no-fill",
        action="store_true",
        help="build with INDEX_FILL_SECONDS=0: no lists ranked after the precompute, before "
        "or after the version goes live (the users it had no time for are ranked live)",
    )
    args = parser.parse_args()

    for name in ("DATABASE_URL", "REDIS_URL", "S3_ENDPOINT"):
        os.environ.pop(name, None)
    stack = bring_up(
        ROOT / ".stack" / "bench", database="recs_bench", redis_db=13, bucket="recs-bench"
    )
    try:
        asyncio.run(run(args, stack.env))
    finally:
        stack.stop()


async def act_after_build(
    base: str, pool: asyncpg.Pool, users: list[str], items: int, rng: random.Random
) -> None:
    """One view each for `users`, through the API; returns once their profiles are stored
    and their lists ranked ahead (or the API gave up ranking some: they are ranked live)."""
    rows = [
        {"user_id": u, "item_id": f"item-{rng.randrange(items)}", "type": "view"} for u in users
    ]
    redis = Redis.from_url(os.environ["REDIS_URL"])
    keys = [ranked_key(u) for u in users]
    try:
        for n in range(0, len(keys), 500):  # an earlier run's lists (--reuse) must not count
            await redis.delete(*keys[n : n + 500])
        answer = httpx.post(
            f"{base}/api/v1/interactions/batch",
            json={"interactions": rows},
            headers={"Authorization": f"Bearer {ADMIN}"},
            timeout=60,
        )
        answer.raise_for_status()
        # Behind them in the queue may wait every user of the bulk load: 200,000 at 1M items.
        queued, deadline = time.monotonic(), time.monotonic() + 900
        while await activity.queued_for(pool, users):
            if time.monotonic() > deadline:
                raise RuntimeError("the profiles of those who acted were not refreshed in 900 s")
            await asyncio.sleep(0.2)
        print(f"their profiles refreshed in {time.monotonic() - queued:.1f} s", flush=True)
        started, ranked = time.monotonic(), 0
        while time.monotonic() < started + 300:
            ranked = 0
            for n in range(0, len(keys), 500):
                ranked += await redis.exists(*keys[n : n + 500])
            if ranked == len(users):
                break
            await asyncio.sleep(0.5)
        print(
            f"{ranked:,} of {len(users):,} lists ranked ahead "
            f"in {time.monotonic() - started:.1f} s",
            flush=True,
        )
    finally:
        await redis.aclose()


def bench_env(servers: dict[str, str], here: Path, **extra: str) -> dict[str, str]:
    """The environment a bench script's processes share: the servers `bring_up` gave, the
    admin key, the fast hashing encoder, an index folder of the script's own, no access log
    (each line costs a request's time), and what the script adds."""
    return (
        dict(os.environ)
        | servers
        | {
            "ADMIN_API_KEY": ADMIN,
            "EMBEDDING_MODEL": "hashing-384",
            "HF_HUB_OFFLINE": "1",
            "INDEX_DATA_DIR": str(here / "index"),
            "ACCESS_LOG": "false",
        }
        | extra
    )


async def fresh_start(env: dict[str, str], here: Path) -> tuple[Any, asyncpg.Pool]:
    """Take `env` as this process's, empty the script's database and Redis database, and
    open a pool whose statements may last as long as a build: (settings, pool)."""
    os.environ.update(env)
    settings = load_settings()
    await wipe(settings)
    timeout = float(settings.index.build_time_limit)
    pool = await create_pool(settings.database.model_copy(update={"command_timeout": timeout}))
    here.mkdir(parents=True, exist_ok=True)
    return settings, pool


async def start_api(
    port: int, env: dict[str, str], log: Path, also: tuple[int, ...] = ()
) -> subprocess.Popen[bytes]:
    """An API process on `port`, its output in `log`, once it listens there (and on `also`,
    a gRPC port say)."""
    with log.open("wb") as out:
        api = subprocess.Popen(
            api_server("127.0.0.1", port, "--log-level", "warning"),
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    for _ in range(600):
        if all(port_open("127.0.0.1", p) for p in (port, *also)):
            return api
        assert api.poll() is None, log.read_text()
        await asyncio.sleep(0.2)
    raise RuntimeError(f"the API did not listen on {port} within 2 minutes: {log}")


def on_own_stack(
    here: Path,
    database: str,
    redis_db: int,
    bucket: str,
    body: Callable[[dict[str, str]], Coroutine[Any, Any, None]],
) -> None:
    """Run `body` on servers of the script's own (its database, Redis database and bucket on
    the local servers, started if missing, and events on its Redis), never on those the
    shell points at."""
    for name in ("DATABASE_URL", "REDIS_URL", "S3_ENDPOINT", "EVENTS_URL"):
        os.environ.pop(name, None)
    stack = bring_up(here, database=database, redis_db=redis_db, bucket=bucket)
    try:
        asyncio.run(body(stack.env))
    finally:
        stack.stop()


async def wipe(settings: Any) -> None:
    """Start from nothing: no tables, no Redis keys of an earlier run."""
    admin = await asyncpg.connect(settings.database.url)
    await admin.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    await admin.close()
    redis = Redis.from_url(settings.redis.url)
    await redis.flushdb()
    await redis.aclose()


async def prepare(pool: asyncpg.Pool, settings: Any, args: argparse.Namespace) -> int:
    """Generate the data, load it and build a version at 10% and at 100% of the catalog."""
    items = make_items(args.items)
    small = args.items // 10
    shape = (args.items, args.users, args.per_user)
    started = time.perf_counter()
    await load_items(pool, items[:small])
    early = await load_interactions(pool, interaction_chunks(*shape, lambda n: n < small))
    print(f"loaded {small:,} items, {early:,} interactions", flush=True)
    small_seconds = 0.0 if args.load_only else (await timed_build(pool, settings))[0]
    await load_items(pool, items[small:])
    del items
    late = await load_interactions(pool, interaction_chunks(*shape, lambda n: n >= small))
    print(
        f"loaded {args.items:,} items, {early + late:,} interactions "
        f"(load {time.perf_counter() - started - small_seconds:.0f}s)",
        flush=True,
    )
    if args.load_only:
        return 0
    full_seconds, outcome = await timed_build(pool, settings)
    version = outcome.version
    assert version is not None
    print(
        f"build (hashing-384 encoder, no model time): {small:,} items "
        f"{small_seconds:.1f}s, {args.items:,} items / {args.users:,} users / "
        f"{early + late:,} interactions {full_seconds:.1f}s -> version {version}",
        flush=True,
    )
    await timed_fill(pool, settings, outcome)
    return version


async def run(args: argparse.Namespace, servers: dict[str, str]) -> None:
    env = (
        os.environ
        | servers
        | {
            "ADMIN_API_KEY": ADMIN,
            "EMBEDDING_MODEL": "hashing-384",
            "HF_HUB_OFFLINE": "1",
            "PORT": str(args.port),
            "INDEX_DATA_DIR": str(ROOT / ".stack" / "bench" / "index"),
            # Like uvicorn's own access log (--no-access-log below), the JSON access line is
            # off here: the figures are the server's, not its log's.
            "ACCESS_LOG": "false",
        }
        | ({"INDEX_FILL_SECONDS": "0"} if args.no_fill else {})
    )
    os.environ.update(env)
    settings = load_settings()
    api = None
    try:
        if not (args.reuse or args.keep_data):
            await wipe(settings)
        # The builds here run as a worker runs them, with a worker's statement time limit.
        timeout = float(settings.index.build_time_limit)
        pool = await create_pool(settings.database.model_copy(update={"command_timeout": timeout}))
        if args.reuse:
            version = await builds.active_version(pool)
            if version is None:
                raise SystemExit("--reuse: no active version in recs_bench; run without it first")
            print(f"reusing version {version} of an earlier run", flush=True)
        elif args.keep_data:
            seconds, outcome = await timed_build(pool, settings)
            version = outcome.version
            assert version is not None
            print(f"build on the data loaded before: {seconds:.1f}s -> version {version}")
            await timed_fill(pool, settings, outcome)
            del outcome
        else:
            version = await prepare(pool, settings, args)
            if args.load_only:
                await pool.close()
                return
        # The trending lists a worker's refresh job would have published: serving reads them.
        redis = Redis.from_url(settings.redis.url)
        await refresh_trending(pool, redis, settings, settings.index.trending_window_hours)
        await redis.aclose()

        api_log = ROOT / ".stack" / "bench" / "api.log"
        with api_log.open("wb") as output:
            api = subprocess.Popen(
                api_server(
                    "127.0.0.1",
                    args.port,
                    "--log-level",
                    "warning",
                    "--workers",
                    str(args.api_workers),
                ),
                cwd=ROOT,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        base = f"http://127.0.0.1:{args.port}"
        deadline = time.monotonic() + 900  # a 1M-item version takes minutes to verify and load
        while True:
            try:
                served = httpx.get(f"{base}/health/ready", timeout=2).json()["index_version"]
                if served:
                    break
            except (httpx.HTTPError, KeyError, ValueError):
                pass
            if time.monotonic() > deadline or api.poll() is not None:
                raise RuntimeError(f"the API did not start:\n{api_log.read_text()[-3000:]}")
            await asyncio.sleep(0.5)

        if served != version:
            raise RuntimeError(f"the API serves version {served}, not {version}: the gate?")
        rng = random.Random(5)
        fresh = "Cache-Control: no-cache\r\n"  # the API ranks afresh: no cached answer
        # Two variants that rank alike: what an experiment adds is its own cost (the
        # lookup, the hash, recording the impressions), not a different ranking.
        alike = [{"name": n, "weight": 1, "params": {}} for n in ("control", "same")]
        create_experiment(base, "bench", alike)
        other = [
            {"name": "control", "weight": 1, "params": {}},
            {"name": "fresher", "weight": 1, "params": {"trending_weight": 1.0}},
        ]
        create_experiment(base, "bench-ab", other)
        users = [f"user-{rng.randrange(args.users)}" for _ in range(5_000)]
        # Users who act after the build get the list the API ranks ahead after their
        # refresh (service/lists.py); the others the list the build ranked for them
        # (indexing/precompute.py), where its time allowed, or a live ranking.
        active = sorted({f"user-{rng.randrange(args.users)}" for _ in range(1_000)})
        await act_after_build(base, pool, active, args.items, rng)
        genres = list(demo.GENRES)
        targets = {
            "trivial /health": (["/health"], ""),
            "similar items": (
                [
                    f"/api/v1/items/item-{rng.randrange(args.items)}/similar?limit=10"
                    for _ in range(5_000)
                ],
                "",
            ),
            "personalised": ([f"/api/v1/recommendations/{u}?limit=10" for u in users], fresh),
            "personalised, acted": (
                [f"/api/v1/recommendations/{rng.choice(active)}?limit=10" for _ in range(5_000)],
                fresh,
            ),
            "personalised, A/A test": (
                [f"/api/v1/recommendations/{u}?limit=10&experiment_id=bench" for u in users],
                fresh,
            ),
            # A variant that ranks otherwise: its users are ranked live.
            "personalised, A/B test": (
                [f"/api/v1/recommendations/{u}?limit=10&experiment_id=bench-ab" for u in users],
                fresh,
            ),
            # Lists ranked live (a category is), again, from the answer cache (an entry
            # lives a minute).
            "personalised, cached": (
                [
                    f"/api/v1/recommendations/{u}?limit=10&category={genres[n % len(genres)]}"
                    for n, u in enumerate(active[:200])
                ],
                "",
            ),
        }
        targets |= rules_rows(base, active)
        wanted = args.only.split(",") if args.only else [""]
        chosen = {k: v for k, v in targets.items() if any(w in k for w in wanted)}
        await measure(args, chosen)
        await kept_share(args.port, {k: v for k, v in chosen.items() if k in RULES_ROWS})
        if args.rebuild:
            # Right after a rebuild goes live, as the nightly build does every day: the
            # version goes live with its users' lists ranked (workers/pipeline.py), and the
            # API reads in every part of them before it swaps (service/serving.py).
            seconds, outcome = await timed_build(pool, settings)
            del outcome
            print(f"\nrebuilt while serving: {seconds:.1f}s", flush=True)
            rebuilt = await until_served(base, version, api, api_log)
            print(f"the API serves version {rebuilt}; measured at once:", flush=True)
            after = ("trivial /health", "personalised", "personalised, acted")
            await measure(args, {k: v for k, v in targets.items() if k in after}, warm=False)
        started = time.perf_counter()
        found = httpx.get(
            f"{base}/api/v1/experiments/bench/results",
            headers={"Authorization": f"Bearer {ADMIN}"},
            timeout=600,
        ).json()
        print(
            f"\nthe A/A test's results, impressions copied from Redis first, in "
            f"{time.perf_counter() - started:.1f} s:"
        )
        for variant in found["variants"]:
            print(
                f"  {variant['name']:8} users {variant['users']:>7,}  impressions "
                f"{variant['impressions']:>9,}  p = {variant['p_value']}"
            )
        rss, pss = memory_mib(api.pid)
        print(
            f"\nAPI memory, {args.api_workers} process(es): RSS {rss:.0f} MiB, PSS {pss:.0f} MiB "
            f"({args.items:,} items, {args.users:,} users, dimension 384)"
        )

        if args.embed:
            counts = [int(n) for n in args.embed_workers.split(",")]
            figures = await embedding_throughput(pool, env, args.embed, counts, args.embed_threads)
            raw = figures["raw_per_s"]
            threads = args.embed_threads or "one per core"
            print(
                f"\nembedding {args.embed:,} texts: raw fp32 encode {raw:.0f}/s; "
                f"workers' model threads: {threads}"
            )
            for n in counts:
                rate = figures[f"workers_{n}_per_s"]
                print(f"  through {n} worker(s): {rate:.0f}/s, {rate / raw:.2f}x the raw encode")
        await pool.close()
    finally:
        if api is not None:
            stop_process(api)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
