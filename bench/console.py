"""The console's pages at scale, beside /health, in one run: each page asked in turn by a
signed-in client, its time to the last byte.

    .venv/bin/python bench/console.py                       # 1,000,000 items, 200,000 users
    .venv/bin/python bench/console.py --items 100000 --users 20000 --build

It uses its own database (`recs_bench_console`), Redis database 9 and bucket
`recs-bench-console` on the local servers (started if missing). It loads a generated catalog
and histories (bench/serving.py's generator: `--per-user` interactions each), builds a
version where `--build` asks (a build at a million items takes a while on a small machine;
without one, lists are the popular items), starts one API process, signs in with the admin
key, makes an experiment and a scenario, and asks every page `--rounds` times, one request at
a time, `/health` among them as the reference. It prints, per page, the median time and the
spread (min..max) and the answer's size.
"""

from __future__ import annotations

import argparse
import re
import statistics
import time

import httpx
import serving  # bench/serving.py: the catalog, the histories and the servers it starts

from devstack.servers import stop_process
from storage.catalog import encode_cursor

ROOT = serving.ROOT
ADMIN = serving.ADMIN
HERE = ROOT / ".stack" / "bench-console"


def pages(items: int, users: int) -> list[str]:
    middle_item, middle_user = f"item-{items // 2}", f"user-{users // 2}"
    return [
        "/health",
        "/console/overview",
        "/console/versions",
        "/console/builds",
        "/console/experiments",
        "/console/experiments/bench",
        "/console/trending",
        "/console/trending?variant=rising",
        "/console/items",
        f"/console/items?cursor={encode_cursor(middle_item)}",  # a page in the middle
        "/console/items?q=quiet+forest",
        f"/console/items/{middle_item}",
        "/console/users",
        f"/console/users/{middle_user}",
        f"/console/users/{middle_user}?scenario=cheap",
        "/console/scenarios",
        "/console/scenarios/cheap",
        "/console/keys",
    ]


async def run(args: argparse.Namespace, servers: dict[str, str]) -> None:
    env = serving.bench_env(servers, HERE, GRPC_PORT="0", RATE_LIMIT_ENABLED="false")
    settings, pool = await serving.fresh_start(env, HERE)
    api = None
    try:
        started = time.perf_counter()
        await serving.load_items(pool, serving.make_items(args.items))
        shape = (args.items, args.users, args.per_user)
        rows = await serving.load_interactions(
            pool, serving.interaction_chunks(*shape, lambda n: True)
        )
        await pool.execute("ANALYZE")
        print(
            f"loaded {args.items:,} items, {args.users:,} users, {rows:,} interactions"
            f" in {time.perf_counter() - started:.0f} s",
            flush=True,
        )
        if args.build:
            seconds, outcome = await serving.timed_build(pool, settings)
            await serving.timed_fill(pool, settings, outcome)
            print(f"build {seconds:.0f} s -> version {outcome.version}", flush=True)
        api = await serving.start_api(args.port, env, HERE / "api.log")
        await measure(args, f"http://127.0.0.1:{args.port}")
    finally:
        if api is not None:
            stop_process(api)
        await pool.close()


async def measure(args: argparse.Namespace, base: str) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=120) as browser:
        signed = await browser.post("/console/sign-in", data={"token": ADMIN})
        assert signed.status_code == 303, signed.text
        headers = {"Authorization": f"Bearer {ADMIN}"}
        variants = [
            {"name": "control", "weight": 1},
            {"name": "pop", "weight": 1, "params": {"strategy": "popular"}},
        ]
        await browser.post(
            "/api/v1/experiments",
            json={"experiment_id": "bench", "variants": variants},
            headers=headers,
        )
        await browser.put(
            "/api/v1/scenarios/cheap",
            json={"filter": "attributes.bucket < 10"},
            headers=headers,
        )
        for n in range(200):  # some exposures for the experiment's page to count
            await browser.get(
                f"/api/v1/recommendations/user-{n}?experiment_id=bench", headers=headers
            )
        times: dict[str, list[float]] = {path: [] for path in pages(args.items, args.users)}
        sizes: dict[str, int] = {}
        for _ in range(args.rounds):
            for path in times:
                started = time.perf_counter()
                answer = await browser.get(path)
                times[path].append(time.perf_counter() - started)
                assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
                assert not re.search(r'class="error"', answer.text), (path, answer.text[:300])
                sizes[path] = len(answer.content)
    print(f"\n{args.rounds} rounds, one request at a time; median (min..max), answer size")
    for path, found in times.items():
        ms = [1000 * t for t in found]
        print(
            f"  {path:48} {statistics.median(ms):8.1f} ms ({min(ms):.1f}..{max(ms):.1f})"
            f"  {sizes[path] / 1024:6.1f} KiB",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--per-user", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--build", action="store_true")
    parser.add_argument("--port", type=int, default=8769)
    args = parser.parse_args()
    serving.on_own_stack(
        HERE, "recs_bench_console", 9, "recs-bench-console", lambda env: run(args, env)
    )


if __name__ == "__main__":
    main()
