"""Faults injected into servers of its own, and what the API answered, kept and recovered.

    .venv/bin/python bench/faults.py            # about 5 minutes; prints a markdown table

It starts its own redis-server (port 6391), PostgreSQL cluster (initdb, port 5441), SeaweedFS
`weed mini` (S3 on port 28333) and one API process (port 8401, the hashing encoder), loads a
small catalog, builds two versions, and then, one fault at a time, kills or pauses (SIGSTOP)
a server, sends the requests each fault concerns, and brings the server back:

  - Redis killed, Redis hung; PostgreSQL stopped, PostgreSQL hung; S3 killed, S3 hung;
  - the API killed 0.2 s after a 10,000-row batch was acknowledged;
  - the API started while Redis, PostgreSQL or S3 is down.

For each request: the answer and how long it took; for writes, whether what was acknowledged
is stored once the server is back; and the time from the server's return until the service is
whole again (ready, and every queued profile refresh done). It never touches the machine's
own servers. Worker faults (a killed worker, redeliveries) are in tests/workers/.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devstack import demo  # noqa: E402
from devstack.servers import api_server, weed_mini  # noqa: E402

ADMIN = "faults-admin-key-0123456789"
REDIS_PORT, PG_PORT, S3_PORT, API_PORT = 6391, 5441, 28333, 8401
PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"))), Path("/usr/bin"))
S3_KEYS = ("faults", "faults-secret-0123456789")
DATABASE = f"postgresql://postgres@127.0.0.1:{PG_PORT}/recs"
WEED_PORTS = [
    f"-s3.port={S3_PORT}",
    "-master.port=29333",
    "-filer.port=28888",
    "-volume.port=28080",
    "-webdav.port=27333",
    "-admin.port=33650",
    "-s3.port.iceberg=28181",
    "-s3.port.lance=28182",
]
Row = dict[str, str]
ROWS: list[Row] = []


def say(line: str) -> None:
    print(line, flush=True)


def pg(program: str, *args: str) -> list[str]:
    """A PostgreSQL program's command line; PostgreSQL refuses to run as root, so as root it
    runs as the postgres user."""
    command = [str(PG_BIN / program), *args]
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


class Servers:
    """The servers this run owns, each startable, stoppable, pausable and resumable."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.redis: subprocess.Popen[bytes] | None = None
        self.weed: subprocess.Popen[bytes] | None = None
        self.pg_dir = work / "pg"
        self.env = os.environ | {
            "DATABASE_URL": DATABASE,
            "REDIS_URL": f"redis://127.0.0.1:{REDIS_PORT}/0",
            "S3_ENDPOINT": f"127.0.0.1:{S3_PORT}",
            "S3_BUCKET": "recs-faults",
            "S3_ACCESS_KEY": S3_KEYS[0],
            "S3_SECRET_KEY": S3_KEYS[1],
            "ADMIN_API_KEY": ADMIN,
            "EMBEDDING_MODEL": "hashing-64",
            "INDEX_DATA_DIR": str(work / "index"),
            "INDEX_POLL_SECONDS": "1",
            "ACCESS_LOG": "false",
            "RATE_LIMIT_ENABLED": "false",
            "DEPLOYMENT_NAME": "faults",
        }

    def start_redis(self) -> None:
        self.redis = subprocess.Popen(
            ["redis-server", "--port", str(REDIS_PORT), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_port(REDIS_PORT)

    def stop_redis(self) -> None:
        assert self.redis is not None
        self.redis.kill()
        self.redis.wait()

    def init_pg(self) -> None:
        self.pg_dir.mkdir(parents=True)
        if os.geteuid() == 0:
            shutil.chown(self.work, "postgres")
            shutil.chown(self.pg_dir, "postgres")
        subprocess.run(
            pg("initdb", "-D", str(self.pg_dir), "-U", "postgres", "--auth=trust"),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        self.start_pg()
        subprocess.run(
            pg("createdb", "-h", "127.0.0.1", "-p", str(PG_PORT), "-U", "postgres", "recs"),
            check=True,
        )

    def start_pg(self) -> None:
        options = f"-p {PG_PORT} -k {self.pg_dir} -c listen_addresses=127.0.0.1"
        log = str(self.pg_dir / "log")
        subprocess.run(
            pg("pg_ctl", "-D", str(self.pg_dir), "-w", "-l", log, "-o", options, "start"),
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def stop_pg(self) -> None:
        subprocess.run(
            pg("pg_ctl", "-D", str(self.pg_dir), "-m", "immediate", "stop"),
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def pg_pids(self) -> list[int]:
        postmaster = int((self.pg_dir / "postmaster.pid").read_text().split()[0])
        children = subprocess.run(["pgrep", "-P", str(postmaster)], capture_output=True, text=True)
        return [postmaster, *map(int, children.stdout.split())]

    def start_weed(self) -> None:
        data = self.work / "s3"
        data.mkdir(exist_ok=True)
        self.weed = subprocess.Popen(
            weed_mini(data, *WEED_PORTS),
            env=os.environ | {"AWS_ACCESS_KEY_ID": S3_KEYS[0], "AWS_SECRET_ACCESS_KEY": S3_KEYS[1]},
            cwd=data,
            stdout=(self.work / "s3.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_port(S3_PORT, 90)

    def stop_weed(self) -> None:
        assert self.weed is not None
        os.killpg(self.weed.pid, signal.SIGKILL)
        self.weed.wait()
        deadline = time.monotonic() + 30
        while port_open(S3_PORT) and time.monotonic() < deadline:
            time.sleep(0.2)

    def pause(self, pids: list[int]) -> None:
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)

    def resume(self, pids: list[int]) -> None:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)

    def stop_all(self) -> None:
        for process in (self.redis, self.weed):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
        if (self.pg_dir / "postmaster.pid").exists():
            with contextlib.suppress(OSError, ValueError):
                self.resume(self.pg_pids())  # a paused server would not stop
            self.stop_pg()


def port_open(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3):
            return True
    except OSError:
        return False


def wait_port(port: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not port_open(port):
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing answers on port {port} after {seconds:.0f}s")
        time.sleep(0.1)


class Api:
    def __init__(self, servers: Servers) -> None:
        self.servers = servers
        self.process: subprocess.Popen[bytes] | None = None
        self.url = f"http://127.0.0.1:{API_PORT}"
        self.http = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=60
        )

    def start(self) -> None:
        self.process = subprocess.Popen(
            api_server("127.0.0.1", API_PORT),
            cwd=ROOT,
            env=self.servers.env,
            stdout=(self.servers.work / "api.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, seconds: float = 90) -> tuple[float, dict[str, Any]]:
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"the API exited with {self.process.returncode}")
            try:
                answer = self.http.get("/health/ready", timeout=3)
                if answer.status_code == 200:
                    return time.monotonic() - started, answer.json()
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("the API was not ready")

    def kill(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


def timed(call: Callable[[], httpx.Response]) -> tuple[str, float]:
    started = time.monotonic()
    try:
        answer = call()
        seconds = time.monotonic() - started
        try:
            body = answer.json()
        except ValueError:
            body = {}
        code = body.get("error", {}).get("code") if isinstance(body, dict) else None
        extra = code or (body.get("strategy") if isinstance(body, dict) else None) or ""
        status = body.get("status") if isinstance(body, dict) and "status" in body else None
        shown = f"{answer.status_code} {extra or status or ''}".strip()
        return shown, seconds
    except httpx.HTTPError as exc:
        return f"no answer ({type(exc).__name__})", time.monotonic() - started


def record(
    fault: str,
    request: str,
    answer: tuple[str, float],
    kept: str = "",
    back: tuple[float, str] | None = None,
) -> None:
    """One line of the table; `back` is (seconds, until what) once the server returned."""
    row = {
        "fault": fault,
        "request": request,
        "answer": answer[0],
        "seconds": round(answer[1], 3),
        "time": f"{answer[1]:.2f} s",
        "kept": kept,
        "recovery_seconds": round(back[0], 3) if back else None,
        "recovery": f"{back[0]:.1f} s {back[1]}" if back else "",
    }
    ROWS.append(row)
    say(f"  {fault} | {request} | {row['answer']} in {row['time']} | {kept} | {back}")


def kept(stored: int, acknowledged: int, back: float) -> str:
    """What became of acknowledged writes: the words the table (and tests/test_faults.py)
    read, LOST and NOT included when that is what happened."""
    lost = "" if stored == acknowledged else f" ({acknowledged - stored} LOST)"
    refreshed = "profiles refreshed" if back != float("inf") else "profile refreshes NOT done"
    return f"{stored}/{acknowledged} stored{lost}, {refreshed}"


def count(sql: str, *args: Any) -> int:
    async def run() -> int:
        conn = await asyncpg.connect(DATABASE)
        try:
            return int(await conn.fetchval(sql, *args))
        finally:
            await conn.close()

    return asyncio.run(run())


def until(check: Callable[[], bool], seconds: float = 120) -> float:
    """Seconds until `check()` holds (polled every 0.1 s)."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > seconds:
            return float("inf")
        time.sleep(0.1)
    return time.monotonic() - started


def ready(api: Api) -> bool:
    try:
        answer = api.http.get("/health/ready", timeout=2)
        return answer.status_code == 200 and answer.json().get("status") == "ready"
    except httpx.HTTPError:
        return False


def whole(api: Api) -> bool:
    """Ready, and no profile refresh left queued."""
    return ready(api) and count("SELECT count(*) FROM profile_refresh") == 0


def interactions(tag: str, n: int) -> list[dict[str, str]]:
    return [
        {
            "user_id": f"user-{k % 200:04d}",
            "item_id": f"horror-{k % 40:03d}",
            "type": "click",
            "event_id": f"{tag}-{k}",
        }
        for k in range(n)
    ]


def build(api: Api) -> int:
    """A version built in this process, as a worker would, then served by the API."""
    from common.settings import load_settings
    from embeddings.encoder import make_encoder
    from storage.blob import open_store
    from storage.db import create_pool
    from workers.context import BuildContext
    from workers.pipeline import build_version

    os.environ.update(api.servers.env)
    settings = load_settings()

    async def run() -> int:
        from redis.asyncio import Redis

        pool = await create_pool(settings.database)
        redis: Redis = Redis.from_url(settings.redis.url)
        # Announced as a worker announces it: the API loads the version at once.
        context = BuildContext(redis=redis, namespace=settings.event_namespace)
        try:
            version = (
                await build_version(
                    pool,
                    open_store(settings),
                    make_encoder("hashing-64"),
                    settings,
                    context,
                    force=True,
                )
            ).version
        finally:
            await pool.close()
            await redis.aclose()
        assert version is not None
        return version

    version = asyncio.run(run())
    until(
        lambda: (
            api.http.get("/api/v1/recommendations/user-0001").json().get("index_version") == version
        )
    )
    return version


def redis_faults(servers: Servers, api: Api, read_key: str) -> None:
    assert servers.redis is not None
    for fault in ("Redis killed", "Redis hung (SIGSTOP)"):
        say(f"{fault}:")
        if fault == "Redis killed":
            servers.stop_redis()
        else:
            servers.pause([servers.redis.pid])
        before = count("SELECT count(*) FROM interactions")
        tag = "r1" if fault == "Redis killed" else "r2"
        record(
            fault,
            "GET /recommendations/{known user}",
            timed(lambda: api.http.get("/api/v1/recommendations/user-0001")),
        )
        record(
            fault,
            "GET /users/{id}/similar",
            timed(lambda: api.http.get("/api/v1/users/user-0001/similar")),
        )
        record(fault, "GET /trending", timed(lambda: api.http.get("/api/v1/trending")))
        record(fault, "GET /health/ready", timed(lambda: api.http.get("/health/ready")))
        answers = [
            timed(lambda row=row: api.http.post("/api/v1/interactions", json=row))
            for row in interactions(tag, 50)
        ]
        slowest = max(answers, key=lambda a: a[1])
        statuses = sorted({a[0] for a in answers})
        victim = "comedy-001" if tag == "r1" else "comedy-002"
        deleted = timed(lambda victim=victim: api.http.delete(f"/api/v1/items/{victim}"))
        if fault == "Redis killed":
            servers.start_redis()
        else:
            servers.resume([servers.redis.pid])
        back = until(lambda: whole(api))
        stored = count("SELECT count(*) FROM interactions") - before
        gone = count(
            "SELECT count(*) FROM items WHERE item_id = $1 AND deleted_at IS NOT NULL", victim
        )
        record(
            fault,
            "50 x POST /interactions",
            (", ".join(statuses), slowest[1]),
            kept(stored, 50, back),
            (back, "to ready with no refresh queued"),
        )
        record(fault, "DELETE /items/{id}", deleted, "deleted" if gone else "NOT deleted")


def postgres_faults(servers: Servers, api: Api, read_key: str) -> None:
    reader = {"Authorization": f"Bearer {read_key}"}
    for fault in ("PostgreSQL stopped", "PostgreSQL hung (SIGSTOP)"):
        say(f"{fault}:")
        pids = servers.pg_pids()
        if fault == "PostgreSQL stopped":
            servers.stop_pg()
        else:
            servers.pause(pids)
        tag = "p1" if fault == "PostgreSQL stopped" else "p2"
        record(
            fault,
            "GET /recommendations (read key)",
            timed(lambda: api.http.get("/api/v1/recommendations/user-0002", headers=reader)),
        )
        record(
            fault,
            "GET /items/{id}/similar (read key)",
            timed(lambda: api.http.get("/api/v1/items/horror-001/similar", headers=reader)),
        )
        record(fault, "GET /users/{id}", timed(lambda: api.http.get("/api/v1/users/user-0002")))
        row = interactions(tag, 1)[0]
        refused = timed(lambda row=row: api.http.post("/api/v1/interactions", json=row))
        record(fault, "GET /health/ready", timed(lambda: api.http.get("/health/ready")))
        if fault == "PostgreSQL stopped":
            servers.start_pg()
        else:
            servers.resume(pids)
        back = until(lambda: ready(api))
        stored = count("SELECT count(*) FROM interactions WHERE event_id = $1", row["event_id"])
        kept = "not stored (a 503 changes nothing)" if stored == 0 else "stored"
        if refused[0].startswith("202"):
            kept = "stored" if stored else "LOST"
        record(fault, "POST /interactions", refused, kept, (back, "to ready"))
        retry = timed(lambda row=row: api.http.post("/api/v1/interactions", json=row))
        twice = count("SELECT count(*) FROM interactions WHERE event_id = $1", row["event_id"])
        record(
            fault,
            "the same POST, retried after",
            retry,
            f"{twice} stored",
        )


def s3_faults(servers: Servers, api: Api, versions: list[int]) -> None:
    assert servers.weed is not None
    old, new = versions
    for fault in ("S3 killed", "S3 hung (SIGSTOP)"):
        say(f"{fault}:")
        if fault == "S3 killed":
            servers.stop_weed()
            pids: list[int] = []
        else:
            pids = [
                int(p)
                for p in subprocess.run(
                    ["pgrep", "-g", str(servers.weed.pid)], capture_output=True, text=True
                ).stdout.split()
            ]
            servers.pause(pids)
        record(fault, "GET /health/ready", timed(lambda: api.http.get("/health/ready")))
        record(
            fault,
            "GET /recommendations",
            timed(lambda: api.http.get("/api/v1/recommendations/user-0003")),
        )
        record(
            fault,
            "POST /search",
            timed(lambda: api.http.post("/api/v1/search", json={"text": "haunted house"})),
        )
        rollback = timed(lambda: api.http.post(f"/api/v1/index/versions/{old}/activate"))
        active = api.http.get("/api/v1/index/versions").json()["active"]
        served = api.http.get("/api/v1/recommendations/user-0003").json()["index_version"]
        if fault == "S3 killed":
            servers.start_weed()
        else:
            servers.resume(pids)
        back = until(lambda: ready(api))
        record(
            fault,
            f"POST /index/versions/{old}/activate (rollback)",
            rollback,
            f"active stays {active}, served {served}",
            (back, "to ready"),
        )
        # weed mini answers on its port before it serves objects again: retry until it does.
        again = timed(lambda: api.http.post(f"/api/v1/index/versions/{old}/activate"))
        retried = time.monotonic()
        while not again[0].startswith("200") and time.monotonic() - retried < 60:
            time.sleep(0.5)
            again = timed(lambda: api.http.post(f"/api/v1/index/versions/{old}/activate"))
        again = (again[0], again[1])
        switched = until(
            lambda: (
                api.http.get("/api/v1/recommendations/user-0003").json()["index_version"] == old
            ),
            30,
        )
        record(
            fault,
            "the rollback, retried after",
            again,
            f"serving {old} {switched:.1f} s after its 200",
            (time.monotonic() - retried - switched, "until a retry succeeded"),
        )
        api.http.post(f"/api/v1/index/versions/{new}/activate")
        until(
            lambda: (
                api.http.get("/api/v1/recommendations/user-0003").json()["index_version"] == new
            ),
            30,
        )


def api_killed_after_batch(servers: Servers, api: Api) -> None:
    fault = "API killed 0.2 s after a 202"
    say(f"{fault}:")
    rows = [
        {
            "user_id": f"batch-user-{k % 2000:04d}",
            "item_id": f"scifi-{k % 40:03d}",
            "type": "view",
            "event_id": f"b-{k}",
        }
        for k in range(10_000)
    ]
    answer = timed(lambda: api.http.post("/api/v1/interactions/batch", json={"interactions": rows}))
    time.sleep(0.2)
    api.kill()
    stored = count("SELECT count(*) FROM interactions WHERE event_id LIKE 'b-%'")
    queued = count("SELECT count(*) FROM profile_refresh")
    api.start()
    api.wait_ready()
    back = until(lambda: count("SELECT count(*) FROM profile_refresh") == 0)
    record(
        fault,
        "POST /interactions/batch (10,000 rows, 2,000 users)",
        answer,
        f"{kept(stored, 10_000, back)}; {queued} refreshes were queued at the kill",
        (back, "after ready"),
    )


def start_with_a_server_down(servers: Servers, api: Api, version: int) -> None:
    for fault, stop, start in (
        ("Redis down at start", servers.stop_redis, servers.start_redis),
        ("PostgreSQL down at start", servers.stop_pg, servers.start_pg),
    ):
        say(f"{fault}:")
        api.stop()
        stop()
        started = time.monotonic()
        api.start()
        assert api.process is not None
        api.process.wait(120)
        took = time.monotonic() - started
        # The line that names the server it waited for (REDIS_URL, DATABASE_URL).
        last = [
            line for line in (servers.work / "api.log").read_text().splitlines() if "_URL" in line
        ][-1:]
        record(
            fault,
            "uvicorn start",
            (f"exits {api.process.returncode}", took),
            (last[0][-120:] if last else ""),
        )
        start()
        api.start()
        took, _ = api.wait_ready()
        record(fault, "uvicorn start, server back", ("ready", took))
    fault = "S3 down at start"
    say(f"{fault}:")
    api.stop()
    servers.stop_weed()
    api.start()
    took, body = api.wait_ready()
    served = api.http.get("/api/v1/recommendations/user-0004").json()["index_version"]
    record(
        fault,
        "uvicorn start",
        (f"ready, {body.get('status')}", took),
        f"serving version {served} from the verified local copy (active {version})",
    )
    servers.start_weed()
    back = until(lambda: ready(api))
    record(fault, "S3 back", ("ready", back), back=(back, "to ready"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    args = parser.parse_args()
    if port_open(API_PORT) or port_open(REDIS_PORT) or port_open(PG_PORT) or port_open(S3_PORT):
        raise SystemExit("a port this run needs is taken (8401, 6391, 5441 or 28333)")
    # A SIGTERM ends the run through `finally`, so the servers it started are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="recs-faults-"))
    servers = Servers(work)
    api = Api(servers)
    try:
        servers.start_redis()
        servers.init_pg()
        servers.start_weed()
        api.start()
        api.wait_ready()
        items = demo.catalog(items_per_genre=40)
        api.http.post("/api/v1/items/batch", json={"items": items}).raise_for_status()
        api.http.post(
            "/api/v1/interactions/batch", json={"interactions": demo.interactions(items, users=200)}
        ).raise_for_status()
        until(lambda: whole(api))
        versions = [build(api), build(api)]
        read_key = api.http.post("/api/v1/keys", json={"name": "reader", "role": "read"}).json()[
            "token"
        ]
        reader = {"Authorization": f"Bearer {read_key}"}
        api.http.get("/api/v1/recommendations/user-0002", headers=reader).raise_for_status()
        say(f"serving version {versions[1]}; {len(items)} items; faults follow")
        redis_faults(servers, api, read_key)
        postgres_faults(servers, api, read_key)
        s3_faults(servers, api, versions)
        api_killed_after_batch(servers, api)
        start_with_a_server_down(servers, api, versions[1])
    finally:
        api.stop()
        servers.stop_all()
    say("\n| fault | request | answer | time | stored or lost | recovery |")
    say("| --- | --- | --- | --- | --- | --- |")
    for row in ROWS:
        say(
            "| "
            + " | ".join(row[k] for k in ("fault", "request", "answer", "time", "kept", "recovery"))
            + " |"
        )
    if args.json is not None:
        args.json.write_text(json.dumps(ROWS, indent=1))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
