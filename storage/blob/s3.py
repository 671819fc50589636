"""S3 (MinIO, SeaweedFS, AWS) through the `minio` client."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import urllib3
from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import MinioException, S3Error

from common.errors import NotFound, ObjectStoreUnavailable
from common.settings import S3Settings
from storage.blob import BlobStore

_MISSING = {"NoSuchKey", "NoSuchObject"}


@contextmanager
def _s3_errors(what: str) -> Iterator[None]:
    try:
        yield
    except S3Error as exc:
        if exc.code in _MISSING:
            raise NotFound(f"{what} does not exist") from exc
        raise ObjectStoreUnavailable(f"S3 refused {what}: {exc.code}: {exc.message}") from exc
    except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
        raise ObjectStoreUnavailable(f"S3 is unavailable ({what}): {exc}") from exc


class S3Store:
    def __init__(self, settings: S3Settings) -> None:
        self.bucket = settings.bucket
        # Short timeouts and few retries: a dead store should fail a readiness check in
        # seconds, not hang it for minutes.
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=3, read=15),
            retries=urllib3.Retry(total=2, backoff_factor=0.2, status_forcelist=(502, 503, 504)),
            maxsize=8,
        )
        self.client = Minio(
            settings.endpoint,
            access_key=settings.access_key,
            secret_key=settings.secret_key.get_secret_value(),
            secure=settings.secure,
            region=settings.region,
            http_client=http,
        )

    def ensure(self) -> None:
        with _s3_errors(f"bucket {self.bucket!r}"):
            if not self.client.bucket_exists(self.bucket):
                self.client.make_bucket(self.bucket)

    def ping(self) -> None:
        with _s3_errors(f"bucket {self.bucket!r}"):
            if not self.client.bucket_exists(self.bucket):
                raise ObjectStoreUnavailable(f"bucket {self.bucket!r} does not exist")

    def put_file(self, key: str, path: Path) -> None:
        with _s3_errors(f"object {key!r}"):
            self.client.fput_object(self.bucket, key, str(path))

    def get_file(self, key: str, path: Path) -> None:
        with _s3_errors(f"object {key!r}"):
            self.client.fget_object(self.bucket, key, str(path))

    def put_bytes(self, key: str, data: bytes) -> None:
        with _s3_errors(f"object {key!r}"):
            self.client.put_object(self.bucket, key, io.BytesIO(data), len(data))

    def get_bytes(self, key: str) -> bytes:
        with _s3_errors(f"object {key!r}"):
            response = self.client.get_object(self.bucket, key)
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

    def read_chunks(self, key: str, size: int) -> Iterator[bytes]:
        with _s3_errors(f"object {key!r}"):
            response = self.client.get_object(self.bucket, key)
        try:
            with _s3_errors(f"object {key!r}"):
                yield from response.stream(size)
        finally:
            response.close()
            response.release_conn()

    def list(self, prefix: str) -> list[str]:
        with _s3_errors(f"prefix {prefix!r}"):
            objects = self.client.list_objects(self.bucket, prefix=prefix, recursive=True)
            return sorted(o.object_name for o in objects if o.object_name)

    def delete_prefix(self, prefix: str) -> int:
        keys = self.list(prefix)
        with _s3_errors(f"prefix {prefix!r}"):
            failures = list(
                self.client.remove_objects(self.bucket, (DeleteObject(k) for k in keys))
            )
        if failures:
            raise ObjectStoreUnavailable(f"S3 kept {len(failures)} object(s) under {prefix!r}")
        return len(keys)


class StoreProbe:
    """Pings a store (any backend) for readiness checks, one call at a time in a thread of
    its own.

    A hung store then ties up that one thread however often readiness is asked, and never
    the default executor that downloads, searches and builds share. A check that waits
    past its limit leaves the ping running, and the next check waits on that same ping.
    """

    def __init__(self, store: BlobStore, name: str = "store-probe") -> None:
        self.store = store
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._flight: asyncio.Future[None] | None = None

    async def ping(self) -> None:
        if self._flight is None or self._flight.done():
            loop = asyncio.get_running_loop()
            self._flight = loop.run_in_executor(self._executor, self.store.ping)
            # A ping nobody waits for any more still ends, in an error: mark it seen.
            self._flight.add_done_callback(lambda done: done.cancelled() or done.exception())
        await asyncio.shield(self._flight)

    async def check(self, seconds: float) -> None:
        """Raise ObjectStoreUnavailable unless the store answers a ping within `seconds`."""
        try:
            await asyncio.wait_for(self.ping(), seconds)
        except TimeoutError as exc:
            raise ObjectStoreUnavailable(
                f"the object store did not answer within {seconds:g} s"
            ) from exc

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
