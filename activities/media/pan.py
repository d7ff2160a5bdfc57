"""A still picture as a clip: the platform's frame panning across it.

The local clip provider pans across its storyboard image (or a gradient), an own-material scene
across the caller's picture. Both go through :func:`pan_still`, which decodes the picture once
and loops that one frame: FFmpeg's ``-loop 1`` input would decode (and scale) the PNG again for
every frame, which cost more than the H.264 encoding itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from activities.media import ffmpeg
from activities.media.export import clip_encoding
from storyreel.contracts import PlatformSpec
from storyreel.settings import DEFAULT_PRESET, Preset


def pan_still(
    inputs: Sequence[str],
    dst: Path,
    frames: int,
    spec: PlatformSpec,
    *,
    size: str = "",
    diagonal: bool = True,
    overlay: str = "",
    threads: int | None = None,
    preset: Preset = DEFAULT_PRESET,
    on_progress: ffmpeg.ProgressCallback | None = None,
    exe: str | None = None,
) -> None:
    """Write ``frames`` frames of the platform's size panning across the first picture of
    ``inputs`` (FFmpeg input options), encoded like every intermediate clip.

    ``size``: filters bringing the picture to the size panned across (ending in a comma), run
    once; the picture must then be at least the frame's size. The pan runs corner to corner
    (``diagonal``) or left to right, vertically centred, and reaches the far edge on the last
    frame. ``overlay``: filters drawn on each panned frame (ending in a comma), e.g. a title.
    """
    travel = max(1, frames - 1)
    y = f"(ih-oh)*n/{travel}" if diagonal else "(ih-oh)/2"
    graph = (
        # One decoded frame, in full chroma so the pan can move one pixel at a time.
        f"trim=end_frame=1,{size}format=yuv444p,loop=loop=-1:size=1,setpts=N/{spec.fps}/TB,"
        f"crop={spec.width}:{spec.height}:x='(iw-ow)*n/{travel}':y='{y}',"
        f"{overlay}fps={spec.fps},format=yuv420p"
    )
    ffmpeg.run(
        [*inputs, "-vf", graph, "-frames:v", str(frames), *clip_encoding(spec, threads, preset),
         "-an", "-movflags", "+faststart", str(dst)],
        duration=frames / spec.fps,
        on_progress=on_progress,
        exe=exe,
    )  # fmt: skip
