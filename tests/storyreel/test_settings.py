"""Settings: the prefix, and .env.example listing every one of them."""

from __future__ import annotations

from pathlib import Path

import pytest

from storyreel.settings import Settings

pytestmark = pytest.mark.fast

ROOT = Path(__file__).resolve().parents[2]


def test_env_example_lists_every_setting() -> None:
    listed = {
        line.split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    expected = {
        str(field.validation_alias) if field.validation_alias else f"STORYREEL_{name.upper()}"
        for name, field in Settings.model_fields.items()
    }
    assert listed == expected


def test_environment_overrides_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORYREEL_MAX_PARALLEL_CLIPS", "3")
    monkeypatch.setenv("STORYREEL_FFMPEG_PATH", "")
    monkeypatch.setenv("STORYREEL_FONT_FILE", "")
    settings = Settings(_env_file=None)
    assert settings.max_parallel_clips == 3
    assert settings.ffmpeg_path is None and settings.font_file is None
    assert settings.clip_task_queue("replicate") == "storyreel-clips-replicate"
