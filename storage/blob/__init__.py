"""Object storage for index artifacts: one Protocol, one module per backend, and
`open_store`, which picks the backend by the scheme of BLOB_URL (as gorse's blob.NewStore
does).

S3 (`s3.py`: MinIO, SeaweedFS, AWS) for deployments; a local folder (`local.py`) for
development and one machine. The same contract suite runs on both
(tests/storage/test_blob.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from common.errors import ConfigError
from common.settings import S3Settings, Settings, blob_location


class BlobStore(Protocol):
    """Keys are '/'-separated paths; values are whole objects."""

    def ensure(self) -> None:
        """Create the bucket (or folder) if it is missing; raise ObjectStoreUnavailable
        unless the store answers."""

    def ping(self) -> None:
        """Raise ObjectStoreUnavailable unless the store answers."""

    def put_file(self, key: str, path: Path) -> None: ...

    def get_file(self, key: str, path: Path) -> None:
        """Download to `path`; raise NotFound when the key is absent."""

    def put_bytes(self, key: str, data: bytes) -> None: ...

    def get_bytes(self, key: str) -> bytes:
        """Raise NotFound when the key is absent."""

    def read_chunks(self, key: str, size: int) -> Iterator[bytes]:
        """The object in chunks of at most `size` bytes, read as they are asked for (never
        whole in memory); raise NotFound when the key is absent."""

    def list(self, prefix: str) -> list[str]:
        """Every key under `prefix`, recursively, sorted."""

    def delete_prefix(self, prefix: str) -> int:
        """Remove every key under `prefix`; return how many were removed."""


def open_store(settings: Settings) -> BlobStore:
    """The store `settings.blob_url` names (BLOB_URL, or else S3_BUCKET on S3)."""
    return store_at(settings.blob_url, settings.s3)


def store_at(url: str, s3: S3Settings) -> BlobStore:
    """The store at `url`: `s3://<bucket>` (S3 at `s3`'s endpoint, with its credentials, in
    that bucket) or `file:///<absolute path>` (a folder). Nothing is contacted yet (`ensure`
    does that). Raise ConfigError for any other URL: the settings refuse one at start, and
    this refuses one that settings made in code carry."""
    try:
        scheme, where = blob_location(url)
    except ValueError as exc:
        raise ConfigError(f"BLOB_URL: {exc}") from exc
    # Imported here: a process that stores in a folder never loads the S3 client.
    if scheme == "s3":
        from storage.blob.s3 import S3Store

        return S3Store(s3.model_copy(update={"bucket": where}))
    from storage.blob.local import LocalStore

    return LocalStore(Path(where))
