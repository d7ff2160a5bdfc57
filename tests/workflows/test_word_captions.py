"""Word captions: in a finished video the highlight moves across the caption line."""

from __future__ import annotations

import subprocess
from pathlib import Path

from temporalio.client import Client

from activities.media import ffmpeg
from activities.media.audio import speech_seconds
from activities.media.layout import caption_box
from activities.media.words import place_words, spread_words
from storyreel.contracts import PLATFORMS, GenerationStatus, Platform, SceneIn
from storyreel.settings import Settings
from storyreel.storage import LocalStorage
from tests.activities.media.helpers import rgb_frame
from tests.workflows.conftest import keep_history, request_for, running_worker, start

TEXT = "The keeper climbs past every window of the tall white lighthouse tower at dawn."
# HIGHLIGHT (0x7C3AED) as it comes out of H.264 4:2:0, with room for the encoder.
VIOLET = (124, 58, 237)


def highlight_pixels(pixels: bytes, width: int) -> list[tuple[int, int]]:
    """(x, y) of every pixel near the highlight colour."""
    found = []
    for i in range(0, len(pixels) - 2, 3):
        if all(abs(pixels[i + c] - VIOLET[c]) < 45 for c in range(3)):
            found.append(((i // 3) % width, (i // 3) // width))
    return found


async def test_the_highlight_moves_right_across_the_line(
    client: Client, settings: Settings, tmp_path: Path
) -> None:
    request = request_for(
        1,
        "local",
        scenes=[SceneIn(description=TEXT, duration=6)],
        platform=Platform.tiktok,
        captions="words",
        narration=True,
        transition="none",
        consistency_context="",
    )
    async with running_worker(client, settings):
        handle = await start(client, settings, request)
        state = await handle.result()
        await keep_history(handle)
    assert state.status is GenerationStatus.completed, state.error
    assert state.video_key is not None
    video = LocalStorage(settings.media_dir).path(state.video_key)

    # Where the words are and when they are said (the worker's TTS is silent: the planner's
    # speaking rate, spread by character count).
    spec = PLATFORMS[Platform.tiktok]
    words = spread_words(TEXT, min(speech_seconds(TEXT), 6 - 0.1))
    placed, lines, size = place_words(words, spec)
    first_line = [item for item in placed if item.page == 0 and item.line == 0]
    assert len(first_line) >= 4
    band = caption_box(spec, lines, size)
    centres = []
    for item in (first_line[0], first_line[3]):
        at = (item.word.start + item.word.end) / 2
        pixels = rgb_frame(video, at, band)
        found = highlight_pixels(pixels, band[2])
        assert len(found) > 200, f"no highlight at {at:.2f} s"
        xs = [x for x, _ in found]
        centres.append(band[0] + sum(xs) / len(xs))
        # The box sits on the word it highlights.
        assert item.x - size * 0.3 <= min(xs) + band[0] <= item.x + size * 0.3
        subprocess.run(
            [ffmpeg.ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-ss", f"{at:.3f}",
             "-i", str(video), "-frames:v", "1", str(tmp_path / f"frame-{at:.2f}.png")],
            check=True,
        )  # fmt: skip
    assert centres[1] > centres[0] + size * 2, centres
