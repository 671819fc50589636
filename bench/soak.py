"""Mixed traffic for a long while against a service of its own, reported every 30 seconds.

    .venv/bin/python bench/soak.py                 # 10 minutes
    .venv/bin/python bench/soak.py --minutes 2 --concurrency 4

It starts `python -m devstack run` (API, worker, beat) on its own database (`recs_soak`,
emptied first), Redis database 12, bucket `recs-soak` and port 8300, with the demo data and
its first build, then keeps `--concurrency` clients busy with this mix:

    50%  personalised recommendations: known users, and one in three a user never seen before
    15%  similar items
    10%  trending (the default window; a category one time in four)
    15%  one interaction of a known or a new user (new users make the profile store grow)
     4%  a batch of 50 interactions
     3%  a page of the catalog
     2%  a search (the query is encoded by the real model)
     1%  an item written again, with new text

Every 30 s it prints, for that interval: requests per second, errors (a 5xx, or no answer),
p50 and p99 of each kind, and the API process's resident memory. At the end: the totals, and
RSS after the warm-up (the first two reports) against RSS at the end. The client shares the
machine with the service: the figures are the service's under that load, not its ceiling.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devstack import demo  # noqa: E402

ADMIN = "soak-admin-key-0123456789"
PORT = 8300
DATABASE = "postgresql://postgres@127.0.0.1:5432/recs_soak"
REPORT_SECONDS = 30.0
MIX = [  # kind, weight
    ("recommend", 50),
    ("similar", 15),
    ("trending", 10),
    ("interaction", 15),
    ("batch", 4),
    ("catalog", 3),
    ("search", 2),
    ("item", 1),
]


class Tally:
    """Latencies and errors per kind, for the current interval and for the whole run."""

    def __init__(self) -> None:
        self.interval: dict[str, list[float]] = defaultdict(list)
        self.total: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)
        self.total_errors: dict[str, int] = defaultdict(int)
        self.samples: list[str] = []

    def record(self, kind: str, seconds: float, error: str | None) -> None:
        self.interval[kind].append(seconds)
        self.total[kind].append(seconds)
        if error is not None:
            self.errors[kind] += 1
            self.total_errors[kind] += 1
            if len(self.samples) < 10:
                self.samples.append(f"{kind}: {error}")

    def take(self) -> tuple[dict[str, list[float]], dict[str, int]]:
        taken = (self.interval, self.errors)
        self.interval, self.errors = defaultdict(list), defaultdict(int)
        return taken


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def api_pid(parent: int) -> int:
    listed = subprocess.run(["pgrep", "-P", str(parent)], capture_output=True, text=True)
    for pid in map(int, listed.stdout.split()):
        if b"uvicorn" in Path(f"/proc/{pid}/cmdline").read_bytes():
            return pid
    raise RuntimeError("the API process was not found among the run's children")


async def empty_database() -> None:
    from devstack.servers import ensure_database

    await ensure_database(DATABASE)
    conn = await asyncpg.connect(DATABASE)
    await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    await conn.close()


def start_service(index_dir: Path) -> subprocess.Popen[str]:
    env = os.environ | {
        "DATABASE_URL": DATABASE,
        "REDIS_URL": "redis://127.0.0.1:6379/12",
        "S3_BUCKET": "recs-soak",
        "PORT": str(PORT),
        "ADMIN_API_KEY": ADMIN,
        "INDEX_DATA_DIR": str(index_dir),
        "ACCESS_LOG": "false",
        "HF_HUB_OFFLINE": "1",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "devstack", "run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 600
    for line in process.stdout:
        print(f"  | {line.rstrip()}", flush=True)
        if "Ctrl-C stops everything" in line:
            return process
        if time.monotonic() > deadline or process.poll() is not None:
            break
    process.kill()
    raise RuntimeError("the service did not start")


async def one_request(
    http: httpx.AsyncClient, kind: str, rng: random.Random, items: list[dict[str, object]]
) -> httpx.Response:
    item = rng.choice(items)
    known = f"user-{rng.randrange(200):04d}"
    fresh = f"soak-{rng.randrange(10**9)}"
    if kind == "recommend":
        user = fresh if rng.random() < 1 / 3 else known
        return await http.get(f"/api/v1/recommendations/{user}", params={"limit": 20})
    if kind == "similar":
        return await http.get(f"/api/v1/items/{item['item_id']}/similar", params={"limit": 10})
    if kind == "trending":
        params = {"category": item["category"]} if rng.random() < 0.25 else {}
        return await http.get("/api/v1/trending", params=params)
    if kind == "interaction":
        row = {
            "user_id": fresh if rng.random() < 0.3 else known,
            "item_id": item["item_id"],
            "type": rng.choice(["view", "click", "like", "purchase"]),
        }
        return await http.post("/api/v1/interactions", json=row)
    if kind == "batch":
        rows = [
            {"user_id": known, "item_id": rng.choice(items)["item_id"], "type": "view"}
            for _ in range(50)
        ]
        return await http.post("/api/v1/interactions/batch", json={"interactions": rows})
    if kind == "catalog":
        return await http.get("/api/v1/items", params={"limit": 50})
    if kind == "search":
        words = str(item["title"]).split()
        return await http.post("/api/v1/search", json={"text": " ".join(words[:2]), "limit": 10})
    body = {**item, "description": f"{item['description']} (edition {rng.randrange(100)})"}
    body.pop("item_id")
    return await http.put(f"/api/v1/items/{item['item_id']}", json=body)


async def client(
    url: str, seed: int, until: float, tally: Tally, items: list[dict[str, object]]
) -> None:
    rng = random.Random(seed)
    kinds, weights = zip(*MIX, strict=True)
    headers = {"Authorization": f"Bearer {ADMIN}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as http:
        while time.monotonic() < until:
            kind = rng.choices(kinds, weights)[0]
            started = time.perf_counter()
            error = None
            try:
                answer = await one_request(http, kind, rng, items)
                if answer.status_code >= 500 or answer.status_code in (400, 401, 403, 422):
                    error = f"{answer.status_code} {answer.text[:200]}"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            tally.record(kind, time.perf_counter() - started, error)


def _cell(values: list[float]) -> str:
    return f"{1000 * percentile(values, 0.5):6.1f}/{1000 * percentile(values, 0.99):7.1f}"


async def soak(url: str, pid: int, minutes: float, concurrency: int) -> list[float]:
    tally = Tally()
    items = demo.catalog()
    started = time.monotonic()
    until = started + minutes * 60
    clients = [
        asyncio.create_task(client(url, seed, until, tally, items)) for seed in range(concurrency)
    ]
    memory: list[float] = []
    kinds = [kind for kind, _ in MIX]
    print("  time   req/s  errors  " + "  ".join(f"{k[:9]:>15}" for k in kinds) + "  RSS MiB")
    print("                        " + "  ".join(f"{'p50/p99 ms':>15}" for _ in kinds))
    while time.monotonic() < until:
        await asyncio.sleep(min(REPORT_SECONDS, max(0.0, until - time.monotonic())))
        latencies, errors = tally.take()
        memory.append(rss_mib(pid))
        count = sum(len(v) for v in latencies.values())
        cells = [_cell(latencies[k]) for k in kinds]
        print(
            f"{time.monotonic() - started:6.0f}s {count / REPORT_SECONDS:7.1f} "
            f"{sum(errors.values()):7d}  "
            + "  ".join(f"{c:>15}" for c in cells)
            + f"  {memory[-1]:7.1f}",
            flush=True,
        )
    await asyncio.gather(*clients)
    total = sum(len(v) for v in tally.total.values())
    print(f"\n{total} requests, {sum(tally.total_errors.values())} errors")
    for kind in kinds:
        values = tally.total[kind]
        if values:
            print(
                f"  {kind:12} {len(values):7d}  p50 {1000 * statistics.median(values):6.1f} ms"
                f"  p99 {1000 * percentile(values, 0.99):7.1f} ms"
                f"  errors {tally.total_errors[kind]}"
            )
    for sample in tally.samples:
        print(f"  error: {sample}")
    return memory


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--without",
        action="append",
        default=[],
        choices=[k for k, _ in MIX],
        help="leave a kind out",
    )
    args = parser.parse_args()
    MIX[:] = [(kind, weight) for kind, weight in MIX if kind not in args.without]
    asyncio.run(empty_database())
    index_dir = Path("/tmp") / f"recs-soak-index-{os.getpid()}"
    service = start_service(index_dir)
    try:
        pid = api_pid(service.pid)
        print(f"API pid {pid}, RSS {rss_mib(pid):.1f} MiB before the load", flush=True)
        memory = asyncio.run(soak(f"http://127.0.0.1:{PORT}", pid, args.minutes, args.concurrency))
        if len(memory) > 3:
            warm, end = memory[1], memory[-1]
            print(
                f"RSS after warm-up {warm:.1f} MiB, at the end {end:.1f} MiB "
                f"({end - warm:+.1f} MiB over {(len(memory) - 2) * REPORT_SECONDS / 60:.1f} min)"
            )
    finally:
        service.send_signal(signal.SIGINT)
        try:
            service.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            service.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
