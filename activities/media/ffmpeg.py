"""Running FFmpeg: progress from its ``-progress`` output, a kill on every way out, a probe.

imageio-ffmpeg ships the binary (no ffprobe), so probing parses ``ffmpeg -i``'s stream summary.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel

from storyreel import fonts
from storyreel.errors import MediaError

ProgressCallback = Callable[[float], None]


@lru_cache
def ffmpeg_exe(configured: str | None = None) -> str:
    if configured:
        return configured
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


@lru_cache
def default_font() -> Path:
    """Roboto Bold (:func:`storyreel.fonts.default_font`)."""
    return fonts.default_font()


def filter_path(path: Path) -> str:
    """A path quoted for use inside an FFmpeg filter argument."""
    text = str(path).replace("\\", "/")
    return "'" + text.replace("'", r"'\''").replace(":", r"\:") + "'"


def run(
    args: Sequence[str],
    *,
    duration: float | None = None,
    on_progress: ProgressCallback | None = None,
    exe: str | None = None,
    end_time: bool = False,
) -> float | None:
    """Run FFmpeg to completion, reporting the fraction done (0..1) as it goes.

    Returns the last ``out_time`` FFmpeg reported (seconds written, as it measures them) when
    progress was followed (``on_progress`` given or ``end_time`` asked for), else ``None``.
    The child is killed if anything interrupts us (including an activity cancellation raised
    into this thread), so no FFmpeg outlives its caller.
    """
    command = [ffmpeg_exe(exe), "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
    if on_progress is not None or end_time:
        command += ["-progress", "pipe:1", "-stats_period", "0.5", "-nostats"]
    command += list(args)
    last: float | None = None
    with tempfile.TemporaryFile() as errors:
        with subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=errors, stdin=subprocess.DEVNULL
        ) as process:
            try:
                assert process.stdout is not None
                for raw in process.stdout:
                    if not raw.startswith(b"out_time_us="):
                        continue
                    value = raw[12:].strip()
                    if not value.lstrip(b"-").isdigit():
                        continue  # "N/A" before the first packet
                    last = int(value) / 1e6
                    if on_progress is not None and duration is not None and duration > 0:
                        on_progress(min(1.0, max(0.0, last / duration)))
                code = process.wait()
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
        if code != 0:
            errors.seek(0)
            message = errors.read().decode(errors="replace").strip()[-2000:]
            raise MediaError(f"ffmpeg exited with {code}: {message or 'no message'}")
    return last


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
