"""Small real media for the media tests: clips, frames, audio samples, MP4 box order."""

from __future__ import annotations

import math
import struct
import subprocess
from pathlib import Path

from activities.media import ffmpeg
from storyreel.contracts import PlatformSpec

# A small frame for tests that exercise mechanics rather than a platform's size.
SMALL = PlatformSpec(width=360, height=640, fps=30)
Box = tuple[int, int, int, int]


def make_clip(
    path: Path,
    spec: PlatformSpec,
    seconds: float,
    colour: str | None = None,
    *,
    audio: bool = False,
    fps: int | None = None,
    size: tuple[int, int] | None = None,
) -> Path:
    """A clip shaped like a provider's: H.264 yuv420p at the platform's size and rate.

    ``colour`` gives a solid frame (easy pixel checks); ``None`` gives moving ``testsrc2``.
    """
    width, height = size or (spec.width, spec.height)
    rate = fps or spec.fps
    source = (
        f"color=c={colour}:s={width}x{height}:r={rate}:d={seconds}"
        if colour
        else f"testsrc2=s={width}x{height}:r={rate}:d={seconds}"
    )
    sound = ["-f", "lavfi", "-i", f"sine=f=330:d={seconds}"] if audio else []
    ffmpeg.run(
        ["-f", "lavfi", "-i", source, *sound, "-vf", "format=yuv420p",
         "-c:v", "libx264", "-preset", "ultrafast", "-r", str(rate),
         "-video_track_timescale", str(rate * 512), *(["-c:a", "aac"] if audio else []),
         str(path)],
    )  # fmt: skip
    return path


def rgb_frame(video: Path, at: float | None, box: Box) -> bytes:
    """The ``(x, y, w, h)`` region of the frame at ``at`` seconds (None: a still), as RGB."""
    x, y, w, h = box
    seek = [] if at is None else ["-ss", f"{at:.3f}"]
    return subprocess.run(
        [ffmpeg.ffmpeg_exe(), "-hide_banner", "-loglevel", "error", *seek,
         "-i", str(video), "-frames:v", "1", "-vf", f"crop={w}:{h}:{x}:{y}",
         "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip


def mean_difference(a: bytes, b: bytes) -> float:
    """Mean absolute difference per channel value (0..255)."""
    assert len(a) == len(b) and a, (len(a), len(b))
    return sum(abs(x - y) for x, y in zip(a[::7], b[::7], strict=True)) / len(a[::7])


def mean_colour(pixels: bytes) -> tuple[float, float, float]:
    count = len(pixels) // 3
    return (
        sum(pixels[0::3]) / count,
        sum(pixels[1::3]) / count,
        sum(pixels[2::3]) / count,
    )


def white_pixels(pixels: bytes) -> int:
    """How many pixels are near white (drawn text)."""
    return sum(
        1
        for i in range(0, len(pixels) - 2, 3)
        if pixels[i] > 200 and pixels[i + 1] > 200 and pixels[i + 2] > 200
    )


def top_level_boxes(path: Path) -> list[str]:
    """The MP4's top-level box types in file order (``moov`` before ``mdat`` = faststart)."""
    kinds, offset, size = [], 0, path.stat().st_size
    with path.open("rb") as handle:
        while offset < size:
            handle.seek(offset)
            header = handle.read(16)
            length, kind = struct.unpack(">I4s", header[:8])
            if length == 1:
                length = struct.unpack(">Q", header[8:16])[0]
            elif length == 0:
                length = size - offset
            kinds.append(kind.decode("latin-1"))
            offset += length
    return kinds


def samples(media: Path, rate: int = 8000) -> list[int]:
    """The audio as mono signed 16-bit samples."""
    raw = subprocess.run(
        [ffmpeg.ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", str(media),
         "-vn", "-ac", "1", "-ar", str(rate), "-f", "s16le", "pipe:1"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    return list(struct.unpack(f"<{len(raw) // 2}h", raw))


def tone_level(
    signal: list[int], start: float, end: float, hertz: float, rate: int = 8000
) -> float:
    """Amplitude of one frequency within a window (Goertzel)."""
    window = signal[int(start * rate) : int(end * rate)]
    coefficient = 2 * math.cos(2 * math.pi * hertz / rate)
    previous = before = 0.0
    for sample in window:
        previous, before = sample + coefficient * previous - before, previous
    power = previous**2 + before**2 - coefficient * previous * before
    return math.sqrt(max(power, 0.0)) / max(1, len(window))
