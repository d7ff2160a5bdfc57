"""STORYREEL_FFMPEG_PRESET: every preset makes H.264 High clips that conform and join by stream
copy, and the setting reaches the encodes of a worker built from its settings."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import get_args

import pytest

from activities.media import ffmpeg
from activities.media.export import conforms, details
from activities.media.stitch import stitch
from activities.providers import LocalClipProvider
from activities.providers.base import ClipJob
from activities.providers.registry import build
from storyreel.contracts import PLATFORMS, Platform
from storyreel.providers import PROVIDERS
from storyreel.settings import Preset, Settings

SPEC = PLATFORMS[Platform.tiktok]
# x264 writes its options into the stream (an SEI message); subme tells the presets apart.
SUBME = {"ultrafast": 0, "superfast": 1, "veryfast": 2, "faster": 4, "fast": 6, "medium": 7}


def x264_options(video: Path) -> str:
    found = re.search(rb"x264 - core .*? options: ([^\x00]+)", video.read_bytes())
    assert found is not None, f"{video.name} carries no x264 options"
    return found.group(1).decode()


def render(settings: Settings, workdir: Path, clip_id: int, seconds: float = 0.5) -> Path:
    """A clip of the local provider exactly as the worker builds it from ``settings``."""
    with ThreadPoolExecutor(1) as executor:
        provider = build(PROVIDERS["local"], settings, executor).clips
        assert isinstance(provider, LocalClipProvider)
        job = ClipJob(
            "g", clip_id, "prompt", f"Scene {clip_id}", seconds, SPEC, "local", 7, None, workdir
        )
        return provider.render(f"p-{clip_id}", job, lambda _status, _percent: None)


def test_the_presets_are_the_ones_the_table_knows() -> None:
    assert set(get_args(Preset)) == set(SUBME)


@pytest.mark.parametrize("preset", ["ultrafast", "veryfast"])
def test_a_preset_reaches_the_encode_and_keeps_clips_high_and_joinable(
    tmp_path: Path, preset: Preset
) -> None:
    settings = Settings(data_dir=tmp_path / "data", ffmpeg_preset=preset, _env_file=None)
    clips = [render(settings, tmp_path, number) for number in (1, 2)]

    options = x264_options(clips[0])
    assert f"subme={SUBME[preset]} " in options
    # CABAC and the 8x8 transform: what makes ultrafast High instead of Constrained Baseline.
    assert "cabac=1" in options and "8x8dct=1" in options
    for clip in clips:
        info = details(clip)
        assert info.video_profile == "High"
        assert conforms(info, SPEC)

    joined = stitch(clips, tmp_path / "joined.mp4", SPEC, transition=None)
    assert joined.mode == "copy"
    # Every frame of both clips decodes from the copy (a mismatched encoding would not).
    frames = ffmpeg.run(["-i", str(tmp_path / "joined.mp4"), "-f", "null", "-"], end_time=True)
    assert frames == pytest.approx(1.0, abs=0.05)


def test_the_default_is_veryfast(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STORYREEL_FFMPEG_PRESET")
    assert Settings(data_dir=tmp_path, _env_file=None).ffmpeg_preset == "veryfast"
