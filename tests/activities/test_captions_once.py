"""A finished video made from local clips shows each caption once: one caption box, not two.

The clips come from the real local providers (storyboard image, then the clip panning over it)
and go through the real assembly activity, as in a run; the check is on the finished pixels.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from temporalio.testing import ActivityEnvironment

from activities.assembly import AssemblyActivities
from activities.media import ffmpeg
from activities.media.layout import caption_box, wrap_caption
from activities.providers import LocalClipProvider, LocalImageProvider
from activities.providers.base import ClipJob, ImageJob
from storyreel.contracts import PLATFORMS, AssemblyClip, Platform, StitchInput
from storyreel.storage import LocalStorage

CAPTIONS = ("A gull lands on the old stone pier.", "Another gull steals its bread and flies.")
SECONDS = 2.0
FRAMES = os.environ.get("STORYREEL_TEST_FRAMES")  # a directory: keep the frames to look at
# A box's top edge darkens what is above it by its opacity (0.45 to 0.55 here) along its whole
# width; the scene's own gradients, pans and glyph outlines never do that across a wide span.
DARKER = 0.75
MIN_LUMA = 48
SPAN = (0.3, 0.7)  # every caption-like box is centred and wider than this middle band


def luma_frame(video: Path, at: float, width: int, height: int) -> list[bytes]:
    raw = subprocess.run(
        [ffmpeg.ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-ss", f"{at:.3f}",
         "-i", str(video), "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray", "pipe:1"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    assert len(raw) == width * height
    return [raw[y * width : (y + 1) * width] for y in range(height)]


def box_tops(rows: list[bytes], first: int, last: int) -> list[int]:
    """Rows in ``[first, last)`` where a wide box starts (clustered: one row per box)."""
    width = len(rows[0])
    columns = range(int(width * SPAN[0]), int(width * SPAN[1]))
    edges: list[int] = []
    for y in range(max(first, 2), last):
        above, here = rows[y - 2], rows[y]
        lit = [x for x in columns if above[x] >= MIN_LUMA]
        if len(lit) < len(columns) * 0.8:
            continue  # too dark to see a box's shadow: count nothing rather than guess
        darkened = sum(1 for x in lit if here[x] < above[x] * DARKER)
        if darkened >= len(lit) * 0.9:
            edges.append(y)
    # One edge smears over a row or two (chroma subsampling, blur): the first row stands for it.
    return [y for n, y in enumerate(edges) if n == 0 or y - edges[n - 1] > 8]


@pytest.mark.parametrize(
    ("platform", "storyboard"),
    # As in a run (the clip pans over its storyboard), and as the simulator renders (no image).
    [(Platform.tiktok, True), (Platform.youtube, False)],
)
def test_a_finished_local_video_has_one_caption_box(
    platform: Platform, storyboard: bool, tmp_path: Path
) -> None:
    spec = PLATFORMS[platform]
    storage = LocalStorage(tmp_path / "media")
    clips = []
    for index, caption in enumerate(CAPTIONS, start=1):
        work = tmp_path / f"clip-{index}"
        work.mkdir()
        image = (
            LocalImageProvider().render_sync(ImageJob("g", index, caption, spec, "l", 3, work))
            if storyboard
            else None
        )
        # As the clip activity builds it: the scene's text is its caption.
        job = ClipJob("g", index, caption, caption, SECONDS, spec, "l", 3, image, work)
        path = LocalClipProvider().render(f"p-{index}", job, lambda _s, _p: None)
        storage.put_file(f"clips/{index}.mp4", path)
        clips.append(AssemblyClip(key=f"clips/{index}.mp4", caption=caption))
    request = StitchInput(
        generation_id="g", platform=platform, clips=clips, captions=True, transition="none"
    )
    activities = AssemblyActivities(storage, tmp_path / "assembly")
    video = storage.path(ActivityEnvironment().run(activities.stitch_video, request).key)

    lines, size = wrap_caption(CAPTIONS[0], spec)
    _, band_top, _, _ = caption_box(spec, len(lines), size)
    if FRAMES:
        ffmpeg.run(["-ss", str(SECONDS / 2), "-i", str(video), "-frames:v", "1",
                    str(Path(FRAMES) / f"{platform}-finished.png")])  # fmt: skip
        ffmpeg.run(["-ss", str(SECONDS / 2), "-i", str(storage.path("clips/1.mp4")),
                    "-frames:v", "1", str(Path(FRAMES) / f"{platform}-clip.png")])  # fmt: skip
    rows = luma_frame(video, SECONDS / 2, spec.width, spec.height)
    # The caption region: the lower half, where both the platform's band and any caption-like
    # box of a clip would be. The whole frame too: a title may stay, a second box may not.
    assert box_tops(rows, spec.height // 2, spec.height) == [pytest.approx(band_top, abs=3)]
    assert len(box_tops(rows, 0, spec.height)) == 1
