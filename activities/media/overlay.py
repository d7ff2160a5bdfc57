"""Scene captions burnt into clips, kept inside each platform's safe area, many at once.

Captions sit on a fixed, semi-transparent band whose geometry is computed here, so
:func:`caption_box` says exactly where pixels change; the text is centred on the band. Band
and text are drawn once per clip (:class:`CaptionLayer`) and laid over every frame.
The output keeps the clip's encoding parameters (:func:`export.clip_encoding`) so that
stitching the overlaid clips can still stream-copy.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Executor, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from activities.media import ffmpeg
from activities.media.export import clip_encoding, fit_frame
from activities.media.layout import BAND_OPACITY, LINE_HEIGHT_EM, Box, caption_box, wrap_caption
from activities.media.words import Word, words_chain
from storyreel.contracts import PlatformSpec
from storyreel.errors import MediaError
from storyreel.fonts import font_for, font_height_em
from storyreel.settings import DEFAULT_PRESET, Preset

logger = logging.getLogger(__name__)
ExecutorFactory = Callable[[int], Executor]


def _text_filter(
    text_file: Path,
    size: int,
    font: Path | None,
    top: str,
    colours: tuple[str, str] = ("white", "black@0.6"),
) -> str:
    # expansion=none: a caption is literal text, '%{...}' must not be evaluated. x centres the
    # text on the frame, which is also the centre of the band (equal margins either side).
    # Lines are LINE_HEIGHT_EM apart whatever the font's own height (a CJK font is taller).
    drawn_in = font_for(text_file.read_text(encoding="utf-8"), font)
    return (
        f"drawtext=fontfile={ffmpeg.filter_path(drawn_in)}"
        f":textfile={ffmpeg.filter_path(text_file)}:expansion=none:text_align=C"
        f":fontsize={size}:fontcolor={colours[0]}:borderw=2:bordercolor={colours[1]}"
        f":line_spacing={round(size * (LINE_HEIGHT_EM - font_height_em(drawn_in)))}"
        f":x=(w-text_w)/2:y={top}"
    )


@dataclass(frozen=True)
class CaptionLayer:
    """A caption drawn once, its band (``box``) and any text, by filter chains that make the
    one-frame picture ``[label]``. Laid over a clip, ``overlay`` repeats it on every frame:
    a blend per frame instead of laying out, rasterising and bordering the text (and filling
    the band pixel by pixel) on every frame. ``at`` is on even pixels, where a 4:2:0
    overlay lands exactly."""

    box: Box
    at: tuple[int, int]
    chains: str
    label: str

    def over(self, picture: str) -> str:
        """This layer's chains, then ``[picture]`` with the layer laid over it, unterminated
        (the caller goes on with ``,filter`` or ends it with ``[label]``)."""
        x, y = self.at
        return f"{self.chains};[{picture}][{self.label}]overlay={x}:{y}:format=yuv420"


def band_layer(
    platform: PlatformSpec, box: Box, label: str, text: tuple[Path, int, Path | None] | None = None
) -> CaptionLayer:
    """The band at ``box`` (black at ``BAND_OPACITY``), with ``text`` (its file, font size and
    font) centred on it in white with a black border, as a :class:`CaptionLayer`."""
    x, y, w, h = box
    left, top = x - x % 2, y - y % 2
    # drawtext on a transparent canvas keeps the text's alpha but loses its border's, so the
    # colours (white text, black border and band) and the coverage (text 1, the border 0.6
    # over the band's 0.55, the band alone 0.55) are drawn apart on opaque canvases and
    # merged: laid over a frame, they compose as band-then-text would. The canvases span the
    # frame from its top left, so the text lands where drawtext on the frame would put it.
    canvas = f"color=black:s={platform.width}x{y + h}:r=1:d=1"
    band = f"drawbox=x={x}:y={y}:w={w}:h={h}:color=white@{BAND_OPACITY}:t=fill"
    colours = coverage = ""
    if text is not None:
        text_file, size, font = text
        at = f"{y}+({h}-text_h)/2"
        colours = "," + _text_filter(text_file, size, font, at, ("white", "black"))
        coverage = "," + _text_filter(text_file, size, font, at, ("white", "white@0.6"))
    chains = (
        f"{canvas},format=rgb24{colours}[{label}c];{canvas},format=gray,{band}{coverage}"
        f"[{label}m];[{label}c][{label}m]alphamerge,"
        f"crop={x + w - left}:{y + h - top}:{left}:{top},format=rgba[{label}]"
    )
    return CaptionLayer(box, (left, top), chains, label)


def caption_layer(
    caption: str,
    platform: PlatformSpec,
    text_file: Path,
    label: str,
    font: Path | None = None,
) -> CaptionLayer | None:
    """``caption`` on its band, wrapped and placed in the safe area, as a layer ``[label]``;
    its text goes to ``text_file``, which must outlive the FFmpeg run. ``None`` for an empty
    caption."""
    lines, size = wrap_caption(caption, platform, font)
    if not lines:
        return None
    text_file.write_text("\n".join(lines), encoding="utf-8")
    box = caption_box(platform, len(lines), size)
    return band_layer(platform, box, label, (text_file, size, font))


def overlay_caption(
    src: Path,
    dst: Path,
    caption: str,
    platform: PlatformSpec,
    *,
    font: Path | None = None,
    on_progress: ffmpeg.ProgressCallback | None = None,
    exe: str | None = None,
    threads: int | None = None,
    words: Sequence[Word] | None = None,
    preset: Preset = DEFAULT_PRESET,
) -> None:
    """Draw ``caption`` on every frame of ``src`` into ``dst`` (H.264, audio copied); with
    ``words``, draw those instead, the one being said highlighted (karaoke).

    An empty caption still re-encodes, so every overlaid clip shares one encoding.
    ``threads`` caps FFmpeg's decoder, filter and encoder threads (``None``: FFmpeg decides).
    """
    dst.parent.mkdir(parents=True, exist_ok=True)
    limit = ["-threads", str(threads)] if threads else []
    with tempfile.TemporaryDirectory(dir=dst.parent, prefix=".caption-") as work:
        duration = ffmpeg.probe(src, exe).duration if on_progress or words else None
        drawn = ""
        if words:
            box, drawn = words_chain(words, platform, font, Path(work), duration or 0.0)
            layer: CaptionLayer | None = band_layer(platform, box, "band")
        else:
            layer = caption_layer(caption, platform, Path(work) / "caption.txt", "caption", font)
        graph = f"[0:v:0]{fit_frame(platform)}"
        if layer is not None:
            graph = f"{graph}[fitted];{layer.over('fitted')}"
        graph += f"{',' if drawn else ''}{drawn},fps={platform.fps},format=yuv420p[v]"
        ffmpeg.run(
            [
                *(["-filter_complex_threads", str(threads)] if threads else []), *limit,
                "-i", str(src), "-filter_complex", graph,
                "-map", "[v]", "-map", "0:a?", *clip_encoding(platform, threads, preset),
                "-c:a", "copy", str(dst),
            ],
            duration=duration,
            on_progress=on_progress,
            exe=exe,
        )  # fmt: skip


@dataclass(frozen=True)
class OverlayJob:
    """One clip to caption."""

    src: Path
    dst: Path
    caption: str
    platform: PlatformSpec
    font: Path | None = None
    words: tuple[Word, ...] | None = None
    preset: Preset = DEFAULT_PRESET


@dataclass
class OverlayReport:
    """Which path ran (``fallback`` = parallel failed, then one by one) and how long it took."""

    mode: Literal["parallel", "sequential", "fallback"]
    seconds: float
    workers: int
    threads_per_job: int
    job_seconds: list[float] = field(default_factory=list)
    fallback_reason: str | None = None


class _ParallelFailed(Exception):
    """The pool or one of its jobs failed: the sequential path gets a go."""


def overlay_all(
    jobs: Sequence[OverlayJob],
    *,
    parallel: bool,
    max_workers: int | None = None,
    on_progress: ffmpeg.ProgressCallback | None = None,
    exe: str | None = None,
    executor_factory: ExecutorFactory | None = None,
) -> OverlayReport:
    """Caption every job; in parallel on a core-bounded pool, falling back to one by one.

    ``on_progress`` gets the overall fraction from the calling thread only (so it may
    heartbeat); if it raises, e.g. because the activity was cancelled, every FFmpeg is stopped
    and the error propagates without a fallback. ``executor_factory`` (workers -> executor)
    exists for tests and for callers that bring their own pool.
    """
    cores = os.cpu_count() or 1
    started = time.monotonic()
    timings = [0.0] * len(jobs)
    if not parallel or len(jobs) <= 1:
        _sequential(jobs, range(len(jobs)), timings, cores, on_progress, exe)
        return OverlayReport("sequential", time.monotonic() - started, 1, cores, timings)
    workers = max(1, min(len(jobs), max_workers or cores, cores))
    threads = max(1, cores // workers)
    done: set[int] = set()
    try:
        _parallel(jobs, timings, done, workers, threads, on_progress, exe, executor_factory)
    except _ParallelFailed as failure:
        reason = f"{type(failure.__cause__).__name__}: {failure.__cause__}"
        logger.warning("parallel overlays failed (%s); running them one by one", reason)
        left = [index for index in range(len(jobs)) if index not in done]
        _sequential(jobs, left, timings, cores, on_progress, exe)
        seconds = time.monotonic() - started
        return OverlayReport("fallback", seconds, workers, threads, timings, reason)
    return OverlayReport("parallel", time.monotonic() - started, workers, threads, timings)


def _run(
    job: OverlayJob, threads: int, exe: str | None, on_progress: ffmpeg.ProgressCallback | None
) -> float:
    began = time.monotonic()
    overlay_caption(
        job.src, job.dst, job.caption, job.platform,
        font=job.font, on_progress=on_progress, exe=exe, threads=threads, words=job.words,
        preset=job.preset,
    )  # fmt: skip
    return time.monotonic() - began


def _sequential(
    jobs: Sequence[OverlayJob],
    indexes: Sequence[int],
    timings: list[float],
    threads: int,
    on_progress: ffmpeg.ProgressCallback | None,
    exe: str | None,
) -> None:
    for position, index in enumerate(indexes):
        report = _share(on_progress, position, len(indexes)) if on_progress else None
        timings[index] = _run(jobs[index], threads, exe, report)


def _share(overall: ffmpeg.ProgressCallback, position: int, count: int) -> ffmpeg.ProgressCallback:
    """Map one job's 0..1 onto its slice of the overall 0..1."""

    def report(fraction: float) -> None:
        overall((position + fraction) / count)

    return report


def _parallel(
    jobs: Sequence[OverlayJob],
    timings: list[float],
    done: set[int],
    workers: int,
    threads: int,
    on_progress: ffmpeg.ProgressCallback | None,
    exe: str | None,
    executor_factory: ExecutorFactory | None,
) -> None:
    stop = threading.Event()
    fractions = [0.0] * len(jobs)

    def progress(index: int) -> ffmpeg.ProgressCallback:
        def report(fraction: float) -> None:
            # Runs on a pool thread at every FFmpeg progress line: raising here kills FFmpeg.
            if stop.is_set():
                raise MediaError("overlay stopped")
            fractions[index] = fraction

        return report

    try:
        pool = (executor_factory or _thread_pool)(workers)
    except Exception as error:
        raise _ParallelFailed from error
    try:
        futures: dict[Future[float], int] = {}
        try:
            for index, job in enumerate(jobs):
                futures[pool.submit(_run, job, threads, exe, progress(index))] = index
        except Exception as error:
            raise _ParallelFailed from error
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, timeout=0.5, return_when=FIRST_EXCEPTION)
            for future in finished:
                try:
                    timings[futures[future]] = future.result()
                except Exception as error:
                    raise _ParallelFailed from error
                done.add(futures[future])
            if on_progress is not None:
                on_progress(
                    sum(1.0 if i in done else f for i, f in enumerate(fractions)) / len(jobs)
                )
    except BaseException:
        stop.set()  # every running FFmpeg dies at its next progress line
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _thread_pool(workers: int) -> Executor:
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="overlay")
