"""A folder on disk as a blob store: for development and for tests of the store contract."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from common.errors import NotFound, ObjectStoreUnavailable


class LocalStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ValueError(f"key {key!r} leaves the store")
        return path

    def ping(self) -> None:
        if not self.root.is_dir():
            raise ObjectStoreUnavailable(f"{self.root} is not a folder")

    def put_file(self, key: str, path: Path) -> None:
        target = self._path(key)
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
        shutil.copyfile(source, path)

    def put_bytes(self, key: str, data: bytes) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".part-")
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, target)

    def get_bytes(self, key: str) -> bytes:
        source = self._path(key)
        if not source.is_file():
            raise NotFound(f"object {key!r} does not exist")
        return source.read_bytes()

    def list(self, prefix: str) -> list[str]:
        return sorted(
            key
            for path in self.root.rglob("*")
            if path.is_file()
            and not path.name.startswith(".part-")
            and (key := path.relative_to(self.root).as_posix()).startswith(prefix)
        )

    def delete_prefix(self, prefix: str) -> int:
        keys = self.list(prefix)
        for key in keys:
            self._path(key).unlink()
        return len(keys)
