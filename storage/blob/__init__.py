"""Object storage for index artifacts: one Protocol, one module per backend, picked by URL."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from common.settings import S3Settings


class BlobStore(Protocol):
    """Keys are '/'-separated paths; values are whole objects."""

    def ping(self) -> None:
        """Raise ObjectStoreUnavailable unless the store answers."""

    def put_file(self, key: str, path: Path) -> None: ...

    def get_file(self, key: str, path: Path) -> None:
        """Download to `path`; raise NotFound when the key is absent."""

    def put_bytes(self, key: str, data: bytes) -> None: ...

    def get_bytes(self, key: str) -> bytes:
        """Raise NotFound when the key is absent."""

    def list(self, prefix: str) -> list[str]:
        """Every key under `prefix`, recursively, sorted."""

    def delete_prefix(self, prefix: str) -> int:
        """Remove every key under `prefix`; return how many were removed."""


def open_store(url: str | None, s3: S3Settings) -> BlobStore:
    """`file:///path` for a local folder; anything else (or nothing) is the configured S3."""
    if url and url.startswith("file://"):
        from storage.blob.local import LocalStore

        return LocalStore(Path(url.removeprefix("file://")))
    from storage.blob.s3 import S3Store

    return S3Store(s3)
