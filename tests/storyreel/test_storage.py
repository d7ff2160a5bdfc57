"""The local storage backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from storyreel.errors import StorageKeyError
from storyreel.storage import LocalStorage


def test_put_get_exists_delete(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "media")
    source = tmp_path / "in.bin"
    source.write_bytes(b"abc" * 1000)
    url = storage.put_file("generations/g/clips/001.mp4", source)
    assert url.startswith("file://") and url.endswith("generations/g/clips/001.mp4")
    assert storage.exists("generations/g/clips/001.mp4")
    storage.get_file("generations/g/clips/001.mp4", tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == source.read_bytes()
    assert not list((tmp_path / "media").rglob("*.part"))
    storage.delete("generations/g/clips/001.mp4")
    assert not storage.exists("generations/g/clips/001.mp4")


@pytest.mark.parametrize("key", ["", "/etc/passwd", "../outside", "a/../../b", "a\\b"])
def test_keys_cannot_escape_the_root(tmp_path: Path, key: str) -> None:
    with pytest.raises(StorageKeyError):
        LocalStorage(tmp_path).path(key)


def test_missing_object_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StorageKeyError, match="no object"):
        LocalStorage(tmp_path).get_file("nope.mp4", tmp_path / "x")
