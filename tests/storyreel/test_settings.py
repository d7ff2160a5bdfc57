"""Settings: the prefix, and .env.example listing every one of them."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from storyreel.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_env_example_lists_every_setting() -> None:
    lines = (ROOT / ".env.example").read_text().splitlines()
    listed = {line.split("=", 1)[0] for line in lines if line and not line.startswith("#")}
    # Other tools' variables are listed commented out (copied to .env, an empty value would
    # reach those tools too).
    listed |= {
        name
        for line in lines
        if (match := re.fullmatch(r"# ([A-Z][A-Z0-9_]*)=\S*", line))
        and not (name := match.group(1)).startswith("STORYREEL_")
    }
    expected = {
        str(field.validation_alias) if field.validation_alias else f"STORYREEL_{name.upper()}"
        for name, field in Settings.model_fields.items()
    }
    assert listed == expected


# Where the process environment may be read as such: the settings themselves, and the stack,
# which hands its own environment on to the processes it starts.
ENVIRONMENT_READERS = {"storyreel/settings.py", "storyreel/stack.py"}


def environ_reads(source: str, name: str = "<source>") -> list[int]:
    """Lines of ``source`` that read the process environment itself (``os.environ``,
    ``os.getenv``, ``os.environb``, or those names imported from ``os``); comments and strings
    that mention them do not count."""
    names = {"environ", "environb", "getenv", "getenvb"}
    lines = []
    for node in ast.walk(ast.parse(source, name)):
        if isinstance(node, ast.Attribute) and node.attr in names:
            if isinstance(node.value, ast.Name) and node.value.id == "os":
                lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            if any(alias.name in names for alias in node.names):
                lines.append(node.lineno)
    return sorted(lines)


def test_nothing_reads_the_environment_beside_settings() -> None:
    """Every knob comes through ``Settings``: a raw read beside it is how a setting (a
    provider's key, once) goes missing in one process and not in another."""
    sources = [
        ROOT / "worker.py",
        *(path for part in ("storyreel", "activities", "workflows", "api") for path in
          (ROOT / part).rglob("*.py")),
    ]  # fmt: skip
    offenders = {
        relative: lines
        for path in sources
        if (relative := path.relative_to(ROOT).as_posix()) not in ENVIRONMENT_READERS
        and (lines := environ_reads(path.read_text(), relative))
    }
    assert offenders == {}


def test_the_environment_reads_are_found_and_comments_are_not() -> None:
    source = """
import os
from os import getenv as g
# os.environ["STORYREEL_X"] in a comment
DOC = "os.getenv('X') in a string"
a = os.environ.get("A")
b = os.getenv("B")
"""
    assert environ_reads(source) == [3, 6, 7]


def test_environment_overrides_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORYREEL_MAX_PARALLEL_CLIPS", "3")
    monkeypatch.setenv("STORYREEL_FFMPEG_PATH", "")
    monkeypatch.setenv("STORYREEL_FONT_FILE", "")
    settings = Settings(_env_file=None)
    assert settings.max_parallel_clips == 3
    assert settings.ffmpeg_path is None and settings.font_file is None
    assert settings.clip_task_queue("replicate") == "storyreel-clips-replicate"
