"""Events at scale, on this machine, in one run: interactions from a topic into PostgreSQL
beside the HTTP batch endpoint, the time from a produced event to a changed recommendation,
and the consumer lag under a burst.

    .venv/bin/python bench/events.py                 # Redis Streams (the default transport)
    .venv/bin/python bench/events.py --kafka         # also Kafka, on a local Tansu broker
    .venv/bin/python bench/events.py --rows 50000    # quicker

It uses its own database (`recs_bench_events`), Redis database 11 and bucket
`recs-bench-events` on the local servers (started if missing). Steps:

1. Load a catalog and histories straight into PostgreSQL, build a version (in process, as
   bench/serving.py builds), start the API.
2. Throughput: `--rows` interactions posted to /api/v1/interactions/batch (10,000 a request,
   4 in flight, bodies serialised before the clock); then as many, one message each, written
   to `recs.interactions` before the events process starts, timed from its start until
   PostgreSQL holds them all (the process's own start-up, a second or two, is in the figure).
3. End to end: `--probes` times, a `like` produced for a user on an item of another stripe,
   and their list asked for (no-cache) every 20 ms until it changes: produce -> consumer ->
   PostgreSQL -> profile refresh -> new list.
4. Burst: `--burst` messages written at once while the events process runs; the
   `recs_events_lag` the API reports, sampled every 0.5 s, until it is back to 0.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import serving  # bench/serving.py: the catalog, the build and the servers it starts

from common.settings import EventSettings
from devstack.servers import KafkaBroker, stop_process
from storage.bus import open_bus

ROOT = serving.ROOT
ADMIN = serving.ADMIN
HERE = ROOT / ".stack" / "bench-events"
BATCH = 10_000
IN_FLIGHT = 4
_LAG = re.compile(rb'^recs_events_lag\{topic="[^"]*interactions"\} ([0-9.e+]+)$', re.M)


def rows(prefix: str, count: int, users: int, items: int) -> list[dict[str, Any]]:
    kinds = ["view", "click", "like", "purchase"]
    return [
        {
            "user_id": f"{prefix}-{n % users}",
            "item_id": f"item-{(n * 7919) % items}",
            "type": kinds[n % 4],
            "event_id": f"{prefix}-e{n}",
        }
        for n in range(count)
    ]


async def post_batches(base: str, body_rows: list[dict[str, Any]]) -> float:
    headers = {"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"}
    queue = [
        orjson.dumps({"interactions": body_rows[n : n + BATCH]})
        for n in range(0, len(body_rows), BATCH)
    ][::-1]
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=300) as http:

        async def sender() -> None:
            while queue:
                (
                    await http.post("/api/v1/interactions/batch", content=queue.pop())
                ).raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(IN_FLIGHT)))
        return time.perf_counter() - started


def events_process(env: dict[str, str], name: str) -> subprocess.Popen[bytes]:
    log = (HERE / f"events-{name}.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "service.events"], cwd=ROOT, env=env, stdout=log, stderr=log
    )


async def count(pool: Any, prefix: str) -> int:
    return int(
        await pool.fetchval(
            "SELECT count(*) FROM interactions WHERE user_id LIKE $1", prefix + "-%"
        )
    )


async def transport(
    label: str, env: dict[str, str], events: EventSettings, base: str, pool: Any, args: Any
) -> None:
    print(f"\n## {label}", flush=True)
    bus = open_bus(events, env["REDIS_URL"], "bench")
    topic = events.topic("interactions")
    await bus.ensure([events.topic(t) for t in ("events", "interactions", "items", "dead")])
    tag = label.split()[0].lower()

    reference = rows(f"http-{tag}", args.rows, args.users, args.items)
    http_seconds = await post_batches(base, reference)
    del reference
    # The API refreshes the profiles the first load queued before the second begins.
    while await pool.fetchval("SELECT count(*) FROM profile_refresh"):
        await asyncio.sleep(0.5)

    produced = rows(f"topic-{tag}", args.rows, args.users, args.items)
    for n in range(0, len(produced), BATCH):
        await bus.publish(topic, [orjson.dumps(r) for r in produced[n : n + BATCH]])
    del produced
    started = time.perf_counter()
    first: float | None = None  # when the first rows landed: the process is up, the group joined
    consumer = events_process(env, tag)
    try:
        while (done := await count(pool, f"topic-{tag}")) < args.rows:
            if consumer.poll() is not None:
                raise RuntimeError(f"the events process exited: {consumer.returncode}")
            if done and first is None:
                first, at_first = time.perf_counter(), done
            await asyncio.sleep(0.05)
        finished = time.perf_counter()
        topic_seconds = finished - started
        steady = (args.rows - at_first) / (finished - first) if first is not None else 0.0
        print(
            f"throughput, {args.rows:,} interactions\n"
            f"  HTTP batch endpoint (10,000 a request, 4 in flight)  "
            f"{args.rows / http_seconds:10,.0f} rows/s\n"
            f"  {topic} -> PostgreSQL (one message each)        "
            f"{args.rows / topic_seconds:10,.0f} rows/s "
            f"({http_seconds / topic_seconds:.2f} of the endpoint's; "
            f"{steady:,.0f} rows/s once the first rows landed, {first - started:.1f} s after "
            "the process started)",
            flush=True,
        )

        latencies = await end_to_end(bus, topic, base, args)
        print(
            f"produce -> changed recommendation, {len(latencies)} probes: median "
            f"{1000 * statistics.median(latencies):.0f} ms, p90 "
            f"{1000 * sorted(latencies)[int(0.9 * len(latencies))]:.0f} ms, max "
            f"{1000 * max(latencies):.0f} ms",
            flush=True,
        )

        burst = rows(f"burst-{tag}", args.burst, args.users, args.items)
        samples: list[tuple[float, float]] = []
        started = time.perf_counter()
        for n in range(0, len(burst), BATCH):
            await bus.publish(topic, [orjson.dumps(r) for r in burst[n : n + BATCH]])
        written = time.perf_counter() - started
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            while True:
                found = _LAG.search((await http.get("/metrics")).content)
                lag = float(found.group(1)) if found else float("nan")
                samples.append((time.perf_counter() - started, lag))
                stored = await count(pool, f"burst-{tag}")
                if stored == args.burst and lag == 0:
                    break
                await asyncio.sleep(0.5)
        drained = time.perf_counter() - started
        peak = max(lag for _, lag in samples)
        print(
            f"burst of {args.burst:,} messages written in {written:.1f} s: recs_events_lag "
            f"peaked at {peak:,.0f}, back to 0 {drained:.1f} s after the burst began "
            f"(sampled every 0.5 s: {', '.join(f'{lag:,.0f}' for _, lag in samples[:12])}...)",
            flush=True,
        )
    finally:
        stop_process(consumer)
        await bus.close()


async def end_to_end(bus: Any, topic: str, base: str, args: Any) -> list[float]:
    """A like for a user, produced; their list asked for until it changes."""
    headers = {"Authorization": f"Bearer {ADMIN}", "Cache-Control": "no-cache"}
    latencies = []
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=10) as http:
        for probe in range(args.probes):
            user = f"user-{probe}"
            before = (await http.get(f"/api/v1/recommendations/{user}")).json()["items"]
            liked = next(
                f"item-{n}"
                for n in range(args.items // 2 + probe * 97, args.items)
                if f"item-{n}" not in {i["item_id"] for i in before}
            )
            event = {
                "user_id": user,
                "item_id": liked,
                "type": "superlike",
                "timestamp": datetime.now(UTC).isoformat(),
            }
            started = time.perf_counter()
            await bus.publish(topic, [orjson.dumps(event)])
            while True:
                now = (await http.get(f"/api/v1/recommendations/{user}")).json()["items"]
                if now != before:
                    break
                if time.perf_counter() - started > 30:
                    raise RuntimeError(f"{user}'s list did not change in 30 s")
                await asyncio.sleep(0.02)
            latencies.append(time.perf_counter() - started)
    return latencies


async def run(args: argparse.Namespace, servers: dict[str, str]) -> None:
    env = serving.bench_env(servers, HERE)
    settings, pool = await serving.fresh_start(env, HERE)
    api = broker = None
    base = f"http://127.0.0.1:{args.port}"
    try:
        await serving.load_items(pool, serving.make_items(args.items))
        shape = (args.items, args.users, 20)
        await serving.load_interactions(pool, serving.interaction_chunks(*shape, lambda n: True))
        seconds, outcome = await serving.timed_build(pool, settings)
        await serving.timed_fill(pool, settings, outcome)
        print(f"build {seconds:.0f} s -> version {outcome.version}", flush=True)
        api = await serving.start_api(args.port, env, HERE / "api.log")
        await transport("Redis Streams", env, settings.events, base, pool, args)
        if args.kafka:
            broker = KafkaBroker()
            broker.start()
            kafka_env = env | {"EVENTS_URL": broker.url}
            stop_process(api)
            api = await serving.start_api(args.port, kafka_env, HERE / "api-kafka.log")
            kafka = EventSettings(url=broker.url)
            await transport("Kafka (Tansu)", kafka_env, kafka, base, pool, args)
    finally:
        if api is not None:
            stop_process(api)
        if broker is not None:
            broker.stop()
        await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--probes", type=int, default=20)
    parser.add_argument("--burst", type=int, default=100_000)
    parser.add_argument("--kafka", action="store_true", help="also measure Kafka (Tansu)")
    parser.add_argument("--port", type=int, default=8767)
    args = parser.parse_args()
    serving.on_own_stack(
        HERE, "recs_bench_events", 11, "recs-bench-events", lambda env: run(args, env)
    )


if __name__ == "__main__":
    main()
