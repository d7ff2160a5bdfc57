"""The rules that lay the suite out by cost name files that exist."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import LONGEST_FIRST, SLOW_PATHS

ROOT = Path(__file__).resolve().parents[2]


def test_the_longest_files_handed_out_first_exist_once() -> None:
    missing = [path for path in LONGEST_FIRST if not (ROOT / path).is_file()]
    assert not missing, f"LONGEST_FIRST names files that are gone: {missing}"
    assert len(set(LONGEST_FIRST)) == len(LONGEST_FIRST)


def test_every_slow_path_names_something_that_exists() -> None:
    # A prefix: a folder, a file, or the start of file names ("tests/activities/test_simulator").
    for prefix in SLOW_PATHS:
        folder, _, stem = prefix.rpartition("/")
        assert any(entry.name.startswith(stem) for entry in (ROOT / folder).iterdir()), prefix
