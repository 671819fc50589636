"""Object storage for index artifacts: one Protocol, one module per backend.

S3 (`s3.py`) serves; the local folder (`local.py`) keeps the contract honest in tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol


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
