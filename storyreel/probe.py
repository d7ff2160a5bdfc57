"""What a media file holds, read by FFmpeg itself: imageio-ffmpeg ships the binary (no
ffprobe), so probing parses ``ffmpeg -i``'s stream summary. The workers probe clips with it and
the API probes uploads (:mod:`storyreel.assets`)."""

from __future__ import annotations

import re
import subprocess
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel

from storyreel.errors import MediaError


@lru_cache
def ffmpeg_exe(configured: str | None = None) -> str:
    if configured:
        return configured
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


class MediaInfo(BaseModel):
    duration: float
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    video_codec: str | None = None
    audio_codec: str | None = None
    size_bytes: int = 0


_DURATION = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_VIDEO = re.compile(r"Stream #\S+.*?: Video: (\w+).*?, (\d{2,5})x(\d{2,5})")
_FPS = re.compile(r"(\d+(?:\.\d+)?) fps")
_AUDIO = re.compile(r"Stream #\S+.*?: Audio: (\w+)")


def probe_text(path: Path, exe: str | None = None) -> str:
    """FFmpeg's stream summary of a media file (what :func:`probe` parses)."""
    if not path.is_file():
        raise MediaError(f"no media file at {path}")
    result = subprocess.run(
        [ffmpeg_exe(exe), "-hide_banner", "-nostdin", "-i", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    text = result.stderr
    if "Input #0" not in text:
        raise MediaError(f"cannot read {path.name} as media: {text[-500:]}")
    return text


def probe(path: Path, exe: str | None = None) -> MediaInfo:
    """Duration, resolution and codecs of a media file."""
    return parse_probe(probe_text(path, exe), path)


def parse_probe(text: str, path: Path) -> MediaInfo:
    """:class:`MediaInfo` from :func:`probe_text`'s summary of ``path``."""
    seconds = 0.0  # still images have no duration
    if duration := _DURATION.search(text):
        hours, minutes, rest = duration.groups()
        seconds = int(hours) * 3600 + int(minutes) * 60 + float(rest)
    info = MediaInfo(duration=seconds, size_bytes=path.stat().st_size)
    if video := _VIDEO.search(text):
        info.video_codec, info.width, info.height = video[1], int(video[2]), int(video[3])
        line = text[video.start() :].splitlines()[0]
        if fps := _FPS.search(line):
            info.fps = float(fps[1])
    if audio := _AUDIO.search(text):
        info.audio_codec = audio[1]
    return info
