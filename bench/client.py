"""The client side at scale, on this machine, in one run: loading a file with `recs import`
beside the batch endpoint's own throughput, and batch exports' rows per second.

    .venv/bin/python bench/client.py                         # 1M rows each way, 20k users
    .venv/bin/python bench/client.py --rows 200000 --users 5000   # quicker

It uses its own database (`recs_bench_client`), Redis database 12 and bucket
`recs-bench-client` on the local servers (started if missing). Steps:

1. Load a catalog (bench/serving.py's items) straight into PostgreSQL; start the API.
2. Ingest, the reference: `--rows` interactions posted to /api/v1/interactions/batch, 10,000
   rows a request, 4 in flight, each body serialised before the clock starts.
3. Ingest, the command: another `--rows` interactions of the same shape, written to a JSON
   lines file, loaded by `recs import interactions FILE --batch 10000 --parallel 4` (reading,
   parsing and encoding included); its wall time as a process. Between 2 and 3 the API
   finishes the profile refreshes the first load queued, so that neither pays for the other.
4. Build a version on all of it (in process, hashing encoder, as bench/serving.py builds),
   rank the lists its precompute left (as the workers would), and wait until the API
   serves it; start a Celery worker.
5. Exports, timed by the export's own start and finish (the worker's start-up, which loads
   the version, is not in them): every user's list (kept by the build: the users are idle
   since); `--live` users' lists ranked live (a scenario with exclude_seen false, which no
   kept list holds); similar items for `--live` items.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import orjson
import serving  # bench/serving.py: the catalog, the build and the servers it starts

from devstack.servers import celery_worker, stop_process

ROOT = serving.ROOT
ADMIN = serving.ADMIN
HERE = ROOT / ".stack" / "bench-client"
BATCH = 10_000
IN_FLIGHT = 4


def interactions(prefix: str, users: int, rows: int, items: int) -> list[dict[str, Any]]:
    """`rows` interactions of `users` users over `items` items, a user's an hour apart (the
    build's holdout needs distinct times)."""
    kinds = ["view", "click", "like", "purchase"]
    now = datetime.now(UTC)
    per_user = max(1, rows // users)
    return [
        {
            "user_id": f"{prefix}-{n % users}",
            "item_id": f"item-{(n * 7919 + (n % users) * 131) % items}",
            "type": kinds[n % 4],
            "timestamp": (now - timedelta(hours=per_user - n // users)).isoformat(),
            "event_id": f"{prefix}-e{n}",
        }
        for n in range(rows)
    ]


async def post_batches(base: str, bodies: list[bytes]) -> float:
    """Post pre-serialised batches, IN_FLIGHT at a time; seconds taken."""
    headers = {"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"}
    queue = list(reversed(bodies))
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=300) as http:

        async def sender() -> None:
            while queue:
                answer = await http.post("/api/v1/interactions/batch", content=queue.pop())
                answer.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(IN_FLIGHT)))
        return time.perf_counter() - started


async def drained(pool: asyncpg.Pool, seconds: float = 1800) -> float:
    """Wait until no profile refresh is queued; seconds waited."""
    started = time.monotonic()
    while await pool.fetchval("SELECT count(*) FROM profile_refresh"):
        if time.monotonic() - started > seconds:
            raise RuntimeError("the profile refreshes did not drain")
        await asyncio.sleep(1.0)
    return time.monotonic() - started


def export_rate(base: str, body: dict[str, Any]) -> tuple[int, float]:
    """Run an export to the end; (rows, seconds between its start and finish)."""
    headers = {"Authorization": f"Bearer {ADMIN}"}
    export_id = httpx.post(f"{base}/api/v1/exports", json=body, headers=headers).json()["export_id"]
    while True:
        found = httpx.get(f"{base}/api/v1/exports/{export_id}", headers=headers).json()
        if found["state"] in ("succeeded", "failed"):
            break
        time.sleep(0.5)
    if found["state"] != "succeeded":
        raise RuntimeError(f"export failed: {found}")
    started = datetime.fromisoformat(found["started_at"])
    finished = datetime.fromisoformat(found["finished_at"])
    return int(found["rows"]), (finished - started).total_seconds()


async def run(args: argparse.Namespace, servers: dict[str, str]) -> None:
    env = serving.bench_env(servers, HERE)
    settings, pool = await serving.fresh_start(env, HERE)
    api = worker = None
    base = f"http://127.0.0.1:{args.port}"
    try:
        await serving.load_items(pool, serving.make_items(args.items))
        api = await serving.start_api(args.port, env, HERE / "api.log")

        reference = interactions("ref", args.users, args.rows, args.items)
        bodies = [
            orjson.dumps({"interactions": reference[n : n + BATCH]})
            for n in range(0, len(reference), BATCH)
        ]
        del reference
        ref_seconds = await post_batches(base, bodies)
        del bodies
        waited = await drained(pool)
        print(f"(profile refreshes of the first load drained in {waited:.0f} s)", flush=True)

        path = HERE / "interactions.jsonl"
        with path.open("wb") as out:
            for row in interactions("cli", args.users, args.rows, args.items):
                out.write(orjson.dumps(row) + b"\n")
        started = time.perf_counter()
        loaded = subprocess.run(
            [
                *(sys.executable, "-m", "recs_client.cli", "import", "interactions", str(path)),
                *("--batch", str(BATCH), "--parallel", str(IN_FLIGHT)),
            ],
            cwd=ROOT,
            env=env | {"RECS_URL": base, "RECS_API_KEY": ADMIN},
            capture_output=True,
            text=True,
        )
        cli_seconds = time.perf_counter() - started
        if loaded.returncode != 0:
            raise RuntimeError(loaded.stdout + loaded.stderr)
        print(loaded.stdout.strip(), flush=True)
        ref_rate, cli_rate = args.rows / ref_seconds, args.rows / cli_seconds
        print(
            f"\ningest of {args.rows:,} interactions ({IN_FLIGHT} requests of {BATCH:,} in "
            f"flight)\n  batch endpoint, bodies ready  {ref_rate:10,.0f} rows/s\n"
            f"  recs import from a file       {cli_rate:10,.0f} rows/s  "
            f"({cli_rate / ref_rate:.2f} of the endpoint's)",
            flush=True,
        )
        await drained(pool)

        seconds, outcome = await serving.timed_build(pool, settings)
        await serving.timed_fill(pool, settings, outcome)
        version = outcome.version
        print(f"build {seconds:.0f} s -> version {version}", flush=True)
        for _ in range(1200):
            try:
                ready = httpx.get(f"{base}/health/ready", timeout=2).json()
                if ready.get("index_version") == version:
                    break
            except (httpx.HTTPError, ValueError):
                pass
            await asyncio.sleep(0.5)
        with (HERE / "worker.log").open("wb") as log:
            worker = subprocess.Popen(
                celery_worker("--loglevel=WARNING"),
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        headers = {"Authorization": f"Bearer {ADMIN}"}
        httpx.put(
            f"{base}/api/v1/scenarios/live", json={"exclude_seen": False}, headers=headers
        ).raise_for_status()
        users = [f"ref-{n}" for n in range(args.live)]
        items = [f"item-{n}" for n in range(args.live)]
        print("\nexports (rows per second between the export's start and finish)")
        for label, body in (
            ("every user, lists kept", {"kind": "recommendations"}),
            (
                f"{args.live:,} users, ranked live",
                {"kind": "recommendations", "ids": users, "scenario": "live"},
            ),
            (f"{args.live:,} items, similar items", {"kind": "similar_items", "ids": items}),
        ):
            rows, took = await asyncio.to_thread(export_rate, base, body)
            print(
                f"  {label:32} {rows:8,} rows {took:7.1f} s {rows / took:9,.0f} rows/s", flush=True
            )
    finally:
        for process in (worker, api):
            if process is not None:
                stop_process(process)
        await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--live", type=int, default=2_000, help="users (and items) exported live")
    parser.add_argument("--port", type=int, default=8766)
    args = parser.parse_args()
    serving.on_own_stack(
        HERE, "recs_bench_client", 12, "recs-bench-client", lambda env: run(args, env)
    )


if __name__ == "__main__":
    main()
