"""Media storage behind one small interface; the local directory backend lives here.

Keys are POSIX-style relative paths (``generations/<id>/clips/01.mp4``). Workflows pass keys
and URLs, never bytes.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path, PurePosixPath
from typing import Protocol

from storyreel.errors import StorageKeyError


class Storage(Protocol):
    def put_file(self, key: str, source: Path) -> str:
        """Store ``source`` under ``key`` (atomically) and return its URL."""
        ...

    def get_file(self, key: str, dest: Path) -> None:
        """Copy the object at ``key`` to ``dest``."""
        ...

    def exists(self, key: str) -> bool: ...

    def url(self, key: str) -> str: ...

    def delete(self, key: str) -> None: ...


def _checked(key: str) -> PurePosixPath:
    path = PurePosixPath(key)
    if not key or path.is_absolute() or ".." in path.parts or "\\" in key:
        raise StorageKeyError(f"invalid storage key {key!r}")
    return path


class LocalStorage:
    """Objects as files under one directory; writes go to a temp name, then rename."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.root.joinpath(*_checked(key).parts)

    def put_file(self, key: str, source: Path) -> str:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
        try:
            shutil.copyfile(source, partial)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        return self.url(key)

    def get_file(self, key: str, dest: Path) -> None:
        source = self.path(key)
        if not source.is_file():
            raise StorageKeyError(f"no object at {key!r}")
        shutil.copyfile(source, dest)

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def url(self, key: str) -> str:
        return self.path(key).as_uri()

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)


def open_storage(media_dir: Path) -> Storage:
    return LocalStorage(media_dir)
