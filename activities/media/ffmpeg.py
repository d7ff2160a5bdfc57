"""Running FFmpeg: progress from its ``-progress`` output, a kill on every way out.

The binary and the probe live in the kernel (:mod:`storyreel.probe`), which the API uses too.
"""

from __future__ import annotations

import subprocess
import tempfile
import threading
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path

from storyreel import fonts
from storyreel.errors import MediaError
from storyreel.probe import MediaInfo as MediaInfo
from storyreel.probe import ffmpeg_exe as ffmpeg_exe
from storyreel.probe import parse_probe as parse_probe
from storyreel.probe import probe as probe
from storyreel.probe import probe_text as probe_text

ProgressCallback = Callable[[float], None]


@lru_cache
def default_font() -> Path:
    """Roboto Bold (:func:`storyreel.fonts.default_font`)."""
    return fonts.default_font()


def stopping(
    stop: threading.Event | None,
    stopped: Callable[[str], Exception],
    what: str,
    then: ProgressCallback | None = None,
) -> ProgressCallback:
    """A progress callback that ends the run once ``stop`` is set (raised in it,
    ``stopped(f"{what} stopped")`` kills FFmpeg), else hands the fraction on to ``then``."""

    def progress(fraction: float) -> None:
        if stop is not None and stop.is_set():
            raise stopped(f"{what} stopped")
        if then is not None:
            then(fraction)

    return progress


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
