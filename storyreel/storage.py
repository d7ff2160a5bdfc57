"""Media storage behind one small interface; the local directory backend lives here.

Keys are POSIX-style relative paths (``generations/<id>/clips/01.mp4``). Workflows pass keys
and URLs, never bytes. The S3 backend is in :mod:`storyreel.s3`; :func:`storage_from_settings`
picks one from ``STORYREEL_STORAGE_URL``.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

from storyreel.errors import StorageKeyError

if TYPE_CHECKING:
    from storyreel.settings import Settings


class Storage(Protocol):
    """Where media lives. Every method is blocking: call it from a thread in async code."""

    def put_file(self, key: str, source: Path) -> str:
        """Store ``source`` under ``key`` (atomically, replacing any object) and return its URL."""
        ...

    def put_stream(self, key: str, chunks: Iterable[bytes]) -> str:
        """Store the concatenated ``chunks`` under ``key`` in constant memory; return its URL.

        Atomic like :meth:`put_file`: if ``chunks`` raises, nothing is stored and any object
        already at ``key`` is left as it was.
        """
        ...

    def get_file(self, key: str, dest: Path) -> None:
        """Copy the object at ``key`` to ``dest``; :class:`StorageKeyError` if there is none."""
        ...

    def exists(self, key: str) -> bool: ...

    def url(self, key: str) -> str:
        """A URL a client can GET the object from (it may expire: do not persist it)."""
        ...

    def local_path(self, key: str) -> Path | None:
        """The object's file when this backend keeps objects on local disk, else ``None``.

        Lets the API serve local files itself and redirect to :meth:`url` otherwise. The file
        may not exist yet.
        """
        ...

    def delete(self, key: str) -> None:
        """Remove the object; a missing object is not an error."""
        ...


def check_key(key: str) -> PurePosixPath:
    """``key`` as a path, or :class:`StorageKeyError` if it could escape the store's root."""
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
        return self.root.joinpath(*check_key(key).parts)

    def put_file(self, key: str, source: Path) -> str:
        target, partial = self._partial(key)
        try:
            shutil.copyfile(source, partial)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        return self.url(key)

    def put_stream(self, key: str, chunks: Iterable[bytes]) -> str:
        target, partial = self._partial(key)
        try:
            with partial.open("wb") as out:
                for chunk in chunks:
                    out.write(chunk)
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

    def local_path(self, key: str) -> Path:
        return self.path(key)

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def _partial(self, key: str) -> tuple[Path, Path]:
        # The temp file sits next to the target so the final rename stays on one filesystem
        # (atomic); the dot prefix and random name keep concurrent writers apart.
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target, target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")


def parse_storage_url(url: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` as ``(bucket, prefix)``; ``ValueError`` for anything else."""
    parts = urlsplit(url)
    bucket = parts.netloc
    if (
        parts.scheme != "s3"
        or not bucket
        or any(c in bucket for c in "@:/")
        or parts.query
        or parts.fragment
    ):
        raise ValueError(f"storage URL must look like s3://bucket/prefix, not {url!r}")
    prefix = parts.path.strip("/")
    if prefix:
        try:
            check_key(prefix)
        except StorageKeyError:
            raise ValueError(f"invalid prefix in storage URL {url!r}") from None
    return bucket, prefix


def storage_from_settings(settings: Settings) -> Storage:
    """S3 when ``storage_url`` is set, else the local directory ``settings.media_dir``."""
    if not settings.storage_url:
        return LocalStorage(settings.media_dir)
    bucket, prefix = parse_storage_url(settings.storage_url)
    # Imported here so processes on local storage never pay for importing boto3.
    from storyreel.s3 import S3Storage, client_from_environment

    client = client_from_environment(settings.aws_endpoint_url)
    return S3Storage(bucket, prefix, client, presign_expiry=settings.presign_expiry_seconds)
