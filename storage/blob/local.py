"""A folder on disk as a blob store (`file:///<absolute path>`): for development, for one
machine whose processes all see the folder, and for tests of the store contract."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from common.errors import NotFound, ObjectStoreUnavailable


@contextmanager
def _disk_errors(what: str) -> Iterator[None]:
    """A disk that refuses (permissions, full, gone) is an unavailable store, as S3 is."""
    try:
        yield
    except OSError as exc:
        raise ObjectStoreUnavailable(f"the folder store cannot reach {what}: {exc}") from exc


class LocalStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ValueError(f"key {key!r} leaves the store")
        return path

    def ensure(self) -> None:
        with _disk_errors(str(self.root)):
            self.root.mkdir(parents=True, exist_ok=True)

    def ping(self) -> None:
        if not self.root.is_dir():
            raise ObjectStoreUnavailable(f"{self.root} is not a folder")

    def put_file(self, key: str, path: Path) -> None:
        target = self._path(key)
        with _disk_errors(f"object {key!r}"):
            target.parent.mkdir(parents=True, exist_ok=True)
            # Copy then rename, so a reader never sees half an object.
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".part-")
            os.close(fd)
            shutil.copyfile(path, tmp)
            os.replace(tmp, target)

    def get_file(self, key: str, path: Path) -> None:
        source = self._path(key)
        if not source.is_file():
            raise NotFound(f"object {key!r} does not exist")
        with _disk_errors(f"object {key!r}"):
            shutil.copyfile(source, path)

    def put_bytes(self, key: str, data: bytes) -> None:
        target = self._path(key)
        with _disk_errors(f"object {key!r}"):
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".part-")
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, target)

    def get_bytes(self, key: str) -> bytes:
        source = self._path(key)
        if not source.is_file():
            raise NotFound(f"object {key!r} does not exist")
        with _disk_errors(f"object {key!r}"):
            return source.read_bytes()

    def read_chunks(self, key: str, size: int) -> Iterator[bytes]:
        source = self._path(key)
        if not source.is_file():
            raise NotFound(f"object {key!r} does not exist")
        with _disk_errors(f"object {key!r}"), source.open("rb") as read:
            while chunk := read.read(size):
                yield chunk

    def list(self, prefix: str) -> list[str]:
        with _disk_errors(f"prefix {prefix!r}"):
            return sorted(
                key
                for path in self.root.rglob("*")
                if path.is_file()
                and not path.name.startswith(".part-")
                and (key := path.relative_to(self.root).as_posix()).startswith(prefix)
            )

    def delete_prefix(self, prefix: str) -> int:
        keys = self.list(prefix)
        with _disk_errors(f"prefix {prefix!r}"):
            for key in keys:
                self._path(key).unlink(missing_ok=True)
        return len(keys)
