"""The deliverable: a platform-exact MP4, its duration limit, a thumbnail and its metadata.

``ffmpeg.probe`` answers duration, size and codecs; :func:`details` adds what an export
decision needs (profile, pixel format, bit rate, audio layout), read from the same
``ffmpeg -i`` summary since imageio-ffmpeg ships no ffprobe.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from activities.media import ffmpeg
from storyreel.contracts import PLATFORMS, Platform, PlatformSpec
from storyreel.errors import BadInputError, MediaError
from storyreel.settings import DEFAULT_PRESET, Preset

# Where a thumbnail may come from, as fractions of the duration; the middle wins ties.
THUMBNAIL_CANDIDATES = (0.5, 0.3, 0.7)


class MediaDetails(ffmpeg.MediaInfo):
    """``MediaInfo`` plus what deciding between stream copy and re-encoding needs."""

    bit_rate: int | None = None
    video_profile: str | None = None
    pix_fmt: str | None = None
    audio_sample_rate: int | None = None
    audio_channels: str | None = None


_BITRATE = re.compile(r"Duration: .*?bitrate: (\d+) kb/s")
_STREAM = re.compile(r"Stream #\S+.*?: (Video|Audio): (.*)")


def _fields(description: str) -> list[str]:
    """Split a stream description on top-level commas ('yuv420p(tv, bt709)' stays whole)."""
    parts, depth, current = [], 0, ""
    for char in description:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    return [*parts, current.strip()]


def details(path: Path, exe: str | None = None) -> MediaDetails:
    """Everything :func:`ffmpeg.probe` knows plus profile, pixel format, bit rate, audio layout."""
    # One FFmpeg run per file: a spawn of the bundled binary costs tens of milliseconds.
    text = ffmpeg.probe_text(path, exe)
    info = MediaDetails(**ffmpeg.parse_probe(text, path).model_dump())
    if rate := _BITRATE.search(text):
        info.bit_rate = int(rate[1]) * 1000
    seen: set[str] = set()
    for kind, description in _STREAM.findall(text):
        if kind in seen:
            continue  # the first stream of each kind is the one that plays
        seen.add(kind)
        parts = _fields(description)
        if kind == "Video":
            if profile := re.match(r"\w+ \(([^)/]+)\)", parts[0]):
                info.video_profile = profile[1]
            if len(parts) > 1 and (pix := re.match(r"\w+", parts[1])):
                info.pix_fmt = pix[0]
        else:
            if len(parts) > 1 and (hertz := re.match(r"(\d+) Hz", parts[1])):
                info.audio_sample_rate = int(hertz[1])
            if len(parts) > 2:
                info.audio_channels = parts[2]
    return info


def metadata(path: Path, exe: str | None = None) -> dict[str, Any]:
    """Duration, width, height, fps, codecs, size in bytes and bit rate, as plain data."""
    return details(path, exe).model_dump()


def check_duration(seconds: float, platform: Platform | str) -> None:
    """Refuse a video longer than ``platform`` accepts, naming the limit and the fix."""
    name = Platform(platform)
    limit = PLATFORMS[name].max_duration
    # A millisecond of slack absorbs float noise; anything a viewer could notice is refused.
    if limit is not None and seconds > limit + 1e-3:
        raise BadInputError(
            f"the video lasts {seconds:.1f} s but {name.value} allows at most {limit:g} s; "
            "shorten the script or choose another platform"
        )


def x264(preset: Preset = DEFAULT_PRESET) -> list[str]:
    """libx264 at ``preset``, always H.264 High.

    ultrafast alone turns CABAC and the 8x8 transform off, which makes Constrained Baseline;
    asking for both keeps it High (the other presets have them on already, so for them this
    changes nothing), and a High clip of any preset still :func:`conforms`.
    """
    return ["-c:v", "libx264", "-preset", preset, "-x264-params", "cabac=1:8x8dct=1"]


def clip_encoding(
    spec: PlatformSpec, threads: int | None = None, preset: Preset = DEFAULT_PRESET
) -> list[str]:
    """H.264 options of every intermediate clip, the same as the local clip renderer's.

    Clips made by different steps then still join by stream copy (one worker encodes all of
    a run's clips at its one ``STORYREEL_FFMPEG_PRESET``).
    """
    limit = ["-threads", str(threads)] if threads else []
    return [
        *x264(preset), "-pix_fmt", "yuv420p", *limit,
        "-r", str(spec.fps), "-video_track_timescale", str(spec.fps * 512),
    ]  # fmt: skip


def fit_frame(spec: PlatformSpec, size: tuple[int | None, int | None] | None = None) -> str:
    """Filters putting any picture on the platform's frame: scaled to fit, padded, never cropped.

    A picture whose ``size`` is known to be the frame's only loses its aspect flag: a no-op
    scale and pad still cost a copy of every frame."""
    width, height = spec.width, spec.height
    if size == (width, height):
        return "setsar=1"
    return (
        f"scale={width}:{height}:force_original_aspect_ratio=decrease,"
        f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2:color=black,setsar=1"
    )


def conforms(info: MediaDetails, spec: PlatformSpec) -> bool:
    """Whether the video stream already is what :func:`export` would encode."""
    return (
        info.video_codec == "h264"
        and (info.video_profile or "").lower() == "high"
        and info.pix_fmt == "yuv420p"
        and (info.width, info.height) == (spec.width, spec.height)
        and info.fps is not None
        and abs(info.fps - spec.fps) < 0.01
    )


def export(
    src: Path,
    dst: Path,
    platform: PlatformSpec,
    *,
    on_progress: ffmpeg.ProgressCallback | None = None,
    exe: str | None = None,
    threads: int | None = None,
    faststart: bool = False,
    known: MediaDetails | None = None,
    preset: Preset = DEFAULT_PRESET,
) -> MediaDetails:
    """Write ``src`` as the platform's MP4: exactly WxH at its fps, H.264 High + AAC, faststart.

    The picture is scaled to fit and padded (letterbox/pillarbox), never cropped. A video
    stream that already conforms is copied; a missing audio stream becomes silence, so every
    export has one. The duration limit is not checked here: see :func:`check_duration`.

    ``faststart``: ``src`` already has its index first (as every file :func:`stitch` writes);
    one that conforms and has AAC sound is then the deliverable as it is, linked (or copied)
    to ``dst`` instead of written again. ``known``: ``src``'s details, already probed.
    """
    info = known or details(src, exe)
    if info.video_codec is None:
        raise MediaError(f"{src.name} has no video stream to export")
    if faststart and info.audio_codec == "aac" and conforms(info, platform):
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.unlink(missing_ok=True)
        try:
            os.link(src, dst)
        except OSError:
            shutil.copyfile(src, dst)
        return info
    inputs = ["-i", str(src)]
    if info.audio_codec is None:
        # Bounded by -t: the silent source never ends on its own.
        inputs += ["-f", "lavfi", "-t", f"{info.duration:.3f}", "-i", "anullsrc=r=48000:cl=stereo"]
    if conforms(info, platform):
        video = ["-c:v", "copy"]
    else:
        video = [
            "-vf", f"{fit_frame(platform)},fps={platform.fps},format=yuv420p",
            *x264(preset), "-profile:v", "high", "-crf", "21",
            *(["-threads", str(threads)] if threads else []),
            "-r", str(platform.fps), "-video_track_timescale", str(platform.fps * 512),
        ]  # fmt: skip
    audio = ["-c:a", "copy"] if info.audio_codec == "aac" else ["-c:a", "aac", "-b:a", "160k"]
    dst.parent.mkdir(parents=True, exist_ok=True)
    ffmpeg.run(
        [
            *inputs, "-map", "0:v:0", "-map", "1:a:0" if info.audio_codec is None else "0:a:0",
            *video, *audio,
            "-movflags", "+faststart", str(dst),
        ],
        duration=info.duration,
        on_progress=on_progress,
        exe=exe,
    )  # fmt: skip
    return details(dst, exe)


def _sharpness(src: Path, at: float, exe: str | None) -> float:
    """Mean absolute neighbour difference of a small grey frame: higher is crisper."""
    width, height = 96, 96
    raw = ffmpeg.ffmpeg_exe(exe)
    frame = subprocess.run(
        [raw, "-hide_banner", "-nostdin", "-loglevel", "error", "-ss", f"{at:.3f}", "-i",
         str(src), "-frames:v", "1", "-vf", f"scale={width}:{height}", "-f", "rawvideo",
         "-pix_fmt", "gray", "pipe:1"],
        capture_output=True, check=False,
    ).stdout  # fmt: skip
    if len(frame) < width * height:
        return -1.0
    total = 0
    for row in range(height - 1):
        line, below = row * width, (row + 1) * width
        for col in range(width - 1):
            here = frame[line + col]
            total += abs(here - frame[line + col + 1]) + abs(here - frame[below + col])
    return total / ((width - 1) * (height - 1))


def thumbnail(src: Path, dst: Path, at: float | None = None, *, exe: str | None = None) -> Path:
    """A JPEG of one frame at the video's own size.

    Without ``at``, the crispest of a few candidates around the middle, so a crossfade or a
    blurred pan is not what represents the video.
    """
    duration = ffmpeg.probe(src, exe).duration
    if at is None:
        candidates = [duration * fraction for fraction in THUMBNAIL_CANDIDATES]
        scores = [_sharpness(src, moment, exe) for moment in candidates]
        at = candidates[scores.index(max(scores))]
    at = min(max(0.0, at), max(0.0, duration - 0.05))
    dst.parent.mkdir(parents=True, exist_ok=True)
    ffmpeg.run(
        ["-ss", f"{at:.3f}", "-i", str(src), "-frames:v", "1", "-q:v", "3",
         "-update", "1", str(dst)],
        exe=exe,
    )  # fmt: skip
    return dst
