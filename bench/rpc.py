"""gRPC beside HTTP, on this machine, in one run: Recommend over gRPC, the same request over
HTTP, and /health, against one API process at the same concurrency.

    .venv/bin/python bench/rpc.py
    .venv/bin/python bench/rpc.py --seconds 5 --rounds 2     # quicker
    .venv/bin/python bench/rpc.py --client python            # without h2load

It uses its own database (`recs_bench_grpc`), Redis database 10 and bucket `recs-bench-grpc`
on the local servers (started if missing). It loads a catalog and histories (bench/serving.py's
generator), builds a version, starts one API process serving HTTP and gRPC, and then, for
`--rounds` rounds, drives each target for `--seconds` at `--concurrency`.

The default client is h2load (Debian's nghttp2-client: `apt-get install nghttp2-client`), a
C client whose own cost is small and the same for both protocols, so that on these shared
cores the figures are the server's: HTTP/1.1 over `--concurrency` keep-alive connections, gRPC
as as many streams on one HTTP/2 connection (one channel). It sends one body, so both ask for
one user's list (`GET /api/v1/recommendations/{user}?limit=10` and `Recommend{user_id,
limit: 10}`), answered as a client asking again is answered. `--client python` drives 2,000
users instead, HTTP with bench/serving.py's keep-alive client and `Cache-Control: no-cache`,
gRPC with grpc.aio; both clients then take CPU from the server.

"gRPC floor" is a grpc.aio server of its own, on uvloop as the API is, answering ten fixed
items: what a call costs before any of this project's work. The server's CPU per request is
read from /proc around each load. It prints req/s, p50 and p99 per round and the median
over the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc
import serving  # bench/serving.py: the catalog, the build and the servers it starts
import uvloop

from devstack.servers import port_open, stop_process
from recs.v1 import recs_pb2 as pb
from recs.v1 import recs_pb2_grpc

ROOT = serving.ROOT
ADMIN = serving.ADMIN
HERE = ROOT / ".stack" / "bench-grpc"
RECOMMEND = "/recs.v1.Recommendations/Recommend"


async def grpc_load(
    port: int, users: list[str], concurrency: int, seconds: float
) -> dict[str, float]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    metadata = (("authorization", f"Bearer {ADMIN}"),)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = recs_pb2_grpc.RecommendationsStub(channel)

        async def caller(n: int) -> None:
            rng = random.Random(n)
            while time.perf_counter() < deadline:
                asked = pb.RecommendRequest(user_id=rng.choice(users), limit=10)
                started = time.perf_counter()
                await stub.Recommend(asked, metadata=metadata)
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(caller(n) for n in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "s": elapsed,
        "rps": len(latencies) / elapsed,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
    }


def h2load_run(
    uri: str,
    concurrency: int,
    seconds: float,
    *,
    grpc_body: bytes | None = None,
    headers: tuple[str, ...] = (),
) -> dict[str, float]:
    """One load from h2load (nghttp2's C client, so the client's own cost is small and the
    same for both protocols): HTTP/1.1 over `concurrency` connections, or gRPC as
    `concurrency` streams on one HTTP/2 connection (one channel). p50 and p99 come from its
    per-request log; a request that did not answer 200 fails the run."""
    log_file = HERE / "h2load.log"
    log_file.unlink(missing_ok=True)  # h2load appends to it
    command = ["h2load", "-t", "1", "-D", str(int(seconds))]
    command += ["--log-file", str(log_file)]
    for header in headers:
        command += ["-H", header]
    if grpc_body is None:
        command += ["--h1", "-c", str(concurrency), "-m", "1"]
    else:
        body = HERE / "grpc-body.bin"
        body.write_bytes(grpc_body)
        command += ["-c", "1", "-m", str(concurrency), "-d", str(body)]
        command += ["-H", "content-type: application/grpc", "-H", "te: trailers"]
    out = subprocess.run([*command, uri], capture_output=True, text=True, check=True).stdout
    rows = [line.split("\t") for line in log_file.read_text().splitlines()]
    bad = [r for r in rows if r[1] != "200"]
    if bad or "0 failed" not in out:
        raise RuntimeError(f"h2load: {len(bad)} requests not answered 200\n{out}")
    latencies = sorted(int(r[2]) / 1e6 for r in rows)
    finished = re.search(r"finished in ([\d.]+)(m?s)", out)
    assert finished, out
    elapsed = float(finished[1]) / (1000 if finished[2] == "ms" else 1)
    return {
        "s": elapsed,
        "rps": len(latencies) / elapsed,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
    }


def grpc_frame(message: Any) -> bytes:
    """A message as gRPC sends it: not compressed, its length, its bytes."""
    data = message.SerializeToString()
    return b"\x00" + len(data).to_bytes(4, "big") + data


class Floor(recs_pb2_grpc.RecommendationsServicer):  # type: ignore[misc]
    """A Recommend that answers ten fixed items at once: what grpc.aio itself costs a call."""

    async def Recommend(self, request: Any, context: Any) -> Any:
        items = [pb.ScoredItem(item_id=f"item-{n}", score=1.0) for n in range(10)]
        return pb.RecommendResponse(
            user_id=request.user_id, items=items, strategy="hybrid", recommendation_id="x"
        )


async def serve_floor(port: int) -> None:
    server = grpc.aio.server()
    recs_pb2_grpc.add_RecommendationsServicer_to_server(Floor(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def cpu_seconds(pid: int) -> float:
    """The process's user and system CPU time so far (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measured(pid: int, work: Any) -> dict[str, float]:
    """A load's figures, with the server's CPU per request (the client's cost left out)."""
    before = cpu_seconds(pid)
    found: dict[str, float] = await work
    found["cpu_us"] = 1e6 * (cpu_seconds(pid) - before) / max(1.0, found["rps"] * found["s"])
    return found


async def run(args: argparse.Namespace, servers: dict[str, str]) -> None:
    env = serving.bench_env(servers, HERE, GRPC_PORT=str(args.grpc_port))
    settings, pool = await serving.fresh_start(env, HERE)
    api = None
    try:
        await serving.load_items(pool, serving.make_items(args.items))
        shape = (args.items, args.users, 20)
        await serving.load_interactions(pool, serving.interaction_chunks(*shape, lambda n: True))
        seconds, outcome = await serving.timed_build(pool, settings)
        await serving.timed_fill(pool, settings, outcome)
        print(f"build {seconds:.0f} s -> version {outcome.version}", flush=True)
        api = await serving.start_api(args.port, env, HERE / "api.log", (args.grpc_port,))
        rng = random.Random(5)
        users = [f"user-{rng.randrange(args.users)}" for _ in range(2_000)]
        fresh = "Cache-Control: no-cache\r\n"
        rows: dict[str, list[dict[str, float]]] = {
            "/health": [],
            "HTTP": [],
            "gRPC": [],
            "gRPC floor": [],
        }
        floor_port = args.grpc_port + 1
        floor = subprocess.Popen(
            [sys.executable, __file__, "--serve-floor", str(floor_port)], cwd=ROOT, env=env
        )
        for _ in range(100):
            if port_open("127.0.0.1", floor_port):
                break
            await asyncio.sleep(0.1)
        await serving.load("127.0.0.1", args.port, ["/health"], args.concurrency, 2)  # warm
        await grpc_load(args.grpc_port, users, args.concurrency, 2)
        paths = [f"/api/v1/recommendations/{u}?limit=10" for u in users]
        # h2load sends one body: one user's list, asked the same way over both protocols
        # (no Cache-Control over HTTP, so both are answered as a client asking again would be).
        one = users[0]
        body = grpc_frame(pb.RecommendRequest(user_id=one, limit=10))
        auth = f"authorization: Bearer {ADMIN}"
        base = f"http://127.0.0.1:{args.port}"
        list_uri = f"{base}/api/v1/recommendations/{one}?limit=10"
        rpc_uri = f"http://127.0.0.1:{args.grpc_port}{RECOMMEND}"
        floor_uri = f"http://127.0.0.1:{floor_port}{RECOMMEND}"
        for round_ in range(args.rounds):
            if args.client == "h2load":
                load = functools.partial(
                    h2load_run, concurrency=args.concurrency, seconds=args.seconds
                )
                loads = {
                    "/health": (api.pid, functools.partial(load, f"{base}/health")),
                    "HTTP": (api.pid, functools.partial(load, list_uri, headers=(auth,))),
                    "gRPC": (
                        api.pid,
                        functools.partial(load, rpc_uri, grpc_body=body, headers=(auth,)),
                    ),
                    "gRPC floor": (floor.pid, functools.partial(load, floor_uri, grpc_body=body)),
                }
                for name, (pid, drive) in loads.items():
                    rows[name].append(await measured(pid, asyncio.to_thread(drive)))
            else:
                health = serving.load(
                    "127.0.0.1", args.port, ["/health"], args.concurrency, args.seconds
                )
                rows["/health"].append(await measured(api.pid, _timed(health, args.seconds)))
                http = serving.load(
                    "127.0.0.1", args.port, paths, args.concurrency, args.seconds, fresh
                )
                rows["HTTP"].append(await measured(api.pid, _timed(http, args.seconds)))
                rpc = grpc_load(args.grpc_port, users, args.concurrency, args.seconds)
                rows["gRPC"].append(await measured(api.pid, rpc))
                bare = grpc_load(floor_port, users, args.concurrency, args.seconds)
                rows["gRPC floor"].append(await measured(floor.pid, bare))
            print(
                f"round {round_ + 1}: "
                + "; ".join(
                    f"{name} {r[-1]['rps']:,.0f} req/s p99 {r[-1]['p99_ms']:.1f} ms"
                    for name, r in rows.items()
                ),
                flush=True,
            )
        print(
            f"\nconcurrency {args.concurrency}, {args.rounds} rounds of {args.seconds:.0f} s,"
            " median over rounds (min..max)"
        )
        for name, found in rows.items():
            rps = [r["rps"] for r in found]
            p99 = [r["p99_ms"] for r in found]
            p50 = [r["p50_ms"] for r in found]
            cpu = statistics.median(r["cpu_us"] for r in found)
            print(
                f"  {name:8} {statistics.median(rps):8,.0f} req/s"
                f" ({min(rps):,.0f}..{max(rps):,.0f})"
                f"  p50 {statistics.median(p50):5.1f} ms  p99 {statistics.median(p99):6.1f} ms"
                f" ({min(p99):.1f}..{max(p99):.1f})  server CPU {cpu:5.0f} us/request",
                flush=True,
            )
        stop_process(floor)
    finally:
        if api is not None:
            stop_process(api)
        await pool.close()


async def _timed(load: Any, seconds: float) -> dict[str, float]:
    """bench/serving.py's load, with its duration (it runs for `seconds`)."""
    found: dict[str, float] = await load
    return {**found, "s": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--port", type=int, default=8768)
    parser.add_argument("--grpc-port", type=int, default=50061)
    parser.add_argument(
        "--client",
        choices=("h2load", "python"),
        default="h2load",
        help="h2load (nghttp2-client) for every target, or the Python clients",
    )
    parser.add_argument("--serve-floor", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_floor:
        uvloop.run(serve_floor(args.serve_floor))  # the loop uvicorn runs the API on
        return
    if args.client == "h2load" and shutil.which("h2load") is None:
        sys.exit("h2load not found: apt-get install nghttp2-client, or use --client python")
    serving.on_own_stack(HERE, "recs_bench_grpc", 10, "recs-bench-grpc", lambda env: run(args, env))


if __name__ == "__main__":
    main()
