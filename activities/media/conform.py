"""A provider's clip made exactly as long as its scene, at the platform's size and encoding.

Models make fixed lengths (Kling 5 or 10 s, Veo 4/6/8 s), so a 4 s scene gets a 5 s clip. The
clip stage checks each download (:func:`probe_output`, :func:`check_output`) and conforms it
(:func:`conform_clip`): the stitch then receives clips already at their scene's length, frame
size and encoding (:func:`export.clip_encoding`), which it joins by stream copy.

A longer clip is trimmed. A shorter one is slowed down, at most :data:`MAX_SLOWDOWN` times
(barely visible), and whatever is still missing is a hold of its last frame; the report says
which, for the run's warnings. The clip's own sound follows the picture (trimmed, slowed with
``atempo``, padded with silence) or is dropped; a clip without sound stays without.
"""

from __future__ import annotations

import math
import os
import tempfile
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from activities.media import ffmpeg
from activities.media.audio import AUDIO_FORMAT
from activities.media.export import MediaDetails, clip_encoding, conforms, details, fit_frame
from storyreel.contracts import ClipAudio, PlatformSpec
from storyreel.errors import MediaError
from storyreel.settings import DEFAULT_PRESET, Preset

# Up to this much slower a clip still looks like itself (a 4 s scene takes a 3.2 s clip);
# beyond, motion visibly drags, and a hold of the last frame covers the rest.
MAX_SLOWDOWN = 1.25
# How far a provider's output may be from the length asked of it before it is refused: a
# second, or a quarter of the length for long clips. Real outputs miss by a few frames
# (Kling's 5 s is 5.04 s at 24 fps); more means the provider did not honour the request (a
# partial render, another model's or job's output), and conforming would freeze or discard
# most of what was paid for.
LENGTH_TOLERANCE_SECONDS = 1.0
LENGTH_TOLERANCE_FRACTION = 0.25
# Codecs of still pictures: a provider answering with one sent its preview, not the clip.
IMAGE_CODECS = frozenset(
    {"png", "apng", "mjpeg", "jpegls", "jpeg2000", "jpegxl", "bmp", "tiff", "webp", "gif", "qoi"}
)
# Seconds of last-frame clones made beyond the need, for the frame-exact cut to take from.
HOLD_SPARE = 0.5
# The sound every conformed clip carries (the stitch's stream copy needs one layout).
# What became of a clip's own sound: kept, dropped (``clip_audio: drop``), or it had none.
ClipSound = Literal["kept", "dropped", "none"]
SOUND = ["-c:a", "aac", "-b:a", "192k", "-ar", "48000", "-ac", "2"]


class ConformStopped(MediaError):
    """The caller's ``stop`` was set while a clip was being conformed (its FFmpeg is dead)."""


def probe_output(path: Path, exe: str | None = None) -> MediaDetails | None:
    """A provider output's details, or ``None`` when it is missing, empty or not media.

    Never raises for a bad file (a truncated download, an HTML error page saved as .mp4):
    :func:`check_output` turns ``None`` into the reason to give."""
    try:
        if path.stat().st_size == 0:
            return None
        return details(path, exe)
    except (OSError, MediaError):
        return None


def length_tolerance(asked_seconds: float) -> float:
    """How far from ``asked_seconds`` an output may last: max(1 s, 25 %)."""
    return max(LENGTH_TOLERANCE_SECONDS, LENGTH_TOLERANCE_FRACTION * asked_seconds)


def check_output(info: MediaDetails | None, asked_seconds: float) -> str | None:
    """Why a provider's output cannot become the scene's clip, or ``None`` when it can.

    ``info`` is :func:`probe_output`'s answer; ``asked_seconds`` the length asked of the
    provider. Refused: unreadable or empty, no video stream, a still image, no duration, or a
    length more than :func:`length_tolerance` away from the one asked."""
    if info is None:
        return "the file is empty or not readable as media"
    if info.video_codec is None or not info.width or not info.height:
        kind = f"only {info.audio_codec} sound" if info.audio_codec else "no stream at all"
        return f"it has no video stream ({kind})"
    if info.video_codec in IMAGE_CODECS:
        return f"it is a still image ({info.video_codec}), not a video"
    if not info.duration or info.duration <= 0 or not math.isfinite(info.duration):
        return f"its length is unknown or zero ({info.video_codec} video)"
    if abs(info.duration - asked_seconds) > length_tolerance(asked_seconds):
        return (
            f"it lasts {info.duration:.2f} s where {asked_seconds:g} s was asked "
            f"(more than {length_tolerance(asked_seconds):.2g} s off)"
        )
    return None


@dataclass(frozen=True)
class ConformReport:
    """What :func:`conform_clip` did to a clip.

    ``action``: ``"unchanged"`` (the source already was right: ``path`` is the source itself),
    ``"remuxed"`` (its picture was right and copied, only the sound was redone or dropped) or
    ``"encoded"``. ``trimmed``/``held`` are seconds cut from the end / of the last frame
    repeated, ``slowdown`` how much slower it plays (1.0: not at all). ``output`` is the
    result's details, for the stitch's ``known``.
    """

    path: Path
    action: Literal["unchanged", "remuxed", "encoded"]
    source_seconds: float
    seconds: float
    frames: int
    trimmed: float = 0.0
    slowdown: float = 1.0
    held: float = 0.0
    resized: bool = False
    audio: ClipSound = "none"
    output: MediaDetails | None = None

    @property
    def stretched(self) -> bool:
        """Whether the scene shows its clip other than as made (slowed down or held)."""
        return self.slowdown > 1.0 or self.held > 0.0

    def warning(self, name: str = "the clip") -> str | None:
        """A sentence for the run's warnings when the clip was slowed or held, else ``None``:
        ``"clip 3 was 3.1 s for a 4 s scene: slowed down 1.25x, held its last frame 0.1 s"``."""
        if not self.stretched:
            return None
        done = []
        if self.slowdown > 1.0:
            done.append(f"slowed down {self.slowdown:.2f}x")
        if self.held > 0.0:
            done.append(f"held its last frame {self.held:.1f} s")
        return (
            f"{name} was {self.source_seconds:.1f} s for a {self.seconds:g} s scene: "
            + ", ".join(done)
        )


def target_frames(seconds: float, fps: int) -> int:
    """Frames a scene of ``seconds`` shows at ``fps`` (at least one)."""
    return max(1, round(seconds * fps))


def _sound_ready(info: MediaDetails, audio: ClipAudio) -> bool:
    """Whether the source's sound already is what a conformed clip carries."""
    if audio == "drop" or info.audio_codec is None:
        return info.audio_codec is None
    return (info.audio_codec, info.audio_sample_rate, info.audio_channels) == (
        "aac",
        48000,
        "stereo",
    )


def _stoppable(
    on_progress: ffmpeg.ProgressCallback | None, stop: threading.Event | None, name: str
) -> ffmpeg.ProgressCallback | None:
    """A progress callback that ends the run (FFmpeg is killed) once ``stop`` is set."""
    if stop is None:
        return on_progress
    return ffmpeg.stopping(stop, ConformStopped, f"conforming {name}", on_progress)


def conform_clip(
    src: Path,
    dst: Path,
    seconds: float,
    spec: PlatformSpec,
    *,
    exe: str | None = None,
    threads: int | None = None,
    preset: Preset = DEFAULT_PRESET,
    audio: ClipAudio = "duck",
    on_progress: ffmpeg.ProgressCallback | None = None,
    stop: threading.Event | None = None,
    known: MediaDetails | None = None,
    fit: bool = True,
) -> ConformReport:
    """Write ``src`` to ``dst`` lasting exactly ``seconds`` (``round(seconds * fps)`` frames),
    at the platform's frame size and rate with the clips' encoding (:func:`clip_encoding`).

    Longer sources are trimmed; shorter ones slowed down (``setpts``, at most
    :data:`MAX_SLOWDOWN` times), then held on their last frame (``tpad``) for what is still
    missing. The clip's sound is kept, trimmed and padded to the same length (``atempo`` when
    slowed), unless ``audio="drop"``; a clip without sound stays without ("keep" and "duck" are
    the same here: the mix decides). A source already right (length within half a frame,
    :func:`export.conforms`, 48 kHz stereo AAC or no sound) is returned untouched, nothing
    written; a right picture with other sound is copied and only its sound redone.

    ``fit=False`` leaves a source already as long as asked as it is, whatever its frame and
    sound (the stitch fits those, as it does for every clip; no second encode), unless its
    sound is to be dropped.

    ``on_progress`` hears the fraction written (to heartbeat); ``stop`` set ends the run with
    :class:`ConformStopped`, FFmpeg killed. ``known``: ``src``'s details, already probed.
    Raises :class:`MediaError` if the source has no video or the result is not as long as
    asked (a truncated source that claims more than it holds).
    """
    if seconds <= 0:
        raise MediaError(f"a clip cannot be conformed to {seconds:g} s")
    info = known or details(src, exe)
    if info.video_codec is None or not info.width or not info.height:
        raise MediaError(f"{src.name} has no video stream to conform")
    frames = target_frames(seconds, spec.fps)
    length = frames / spec.fps
    source = info.duration
    right_length = abs(source - length) <= 0.5 / spec.fps
    sound: ClipSound = (
        "none" if info.audio_codec is None else "dropped" if audio == "drop" else "kept"
    )
    report = ConformReport(
        path=dst,
        action="encoded",
        source_seconds=source,
        seconds=length,
        frames=frames,
        audio=sound,
        resized=(info.width, info.height) != (spec.width, spec.height),
    )
    progress = _stoppable(on_progress, stop, src.name)
    if stop is not None and stop.is_set():
        raise ConformStopped(f"conforming {src.name} stopped")
    if right_length and not fit and (audio != "drop" or info.audio_codec is None):
        return replace(report, path=src, action="unchanged", output=info)
    if right_length and conforms(info, spec) and _sound_ready(info, audio):
        return replace(report, path=src, action="unchanged", output=info)
    if right_length and conforms(info, spec):
        # The picture is right: copied as it is, only the sound redone (or dropped).
        args = ["-i", str(src), "-map", "0:v:0", "-c:v", "copy"]
        if sound == "kept":
            graph = f"[0:a:0]{_sound_chain(length, 1.0)}[a]"
            args += ["-filter_complex", graph, "-map", "[a]", *SOUND]
        return _write(args, replace(report, action="remuxed"), spec, progress, exe)
    slowdown, held = 1.0, 0.0
    if source < length - 0.5 / spec.fps:
        slowdown = min(MAX_SLOWDOWN, length / source)
        held = max(0.0, length - source * slowdown)
    limit = ["-threads", str(threads)] if threads else []
    filter_threads = ["-filter_complex_threads", str(threads)] if threads else []
    graph = f"[0:v:0]{_picture_chain(info, spec, frames, slowdown, held)}[v]"
    maps = ["-map", "[v]"]
    if sound == "kept":
        graph += f";[0:a:0]{_sound_chain(length, slowdown)}[a]"
        maps += ["-map", "[a]", *SOUND]
    args = [
        *filter_threads, *limit, "-i", str(src), "-filter_complex", graph, *maps,
        *clip_encoding(spec, threads, preset), "-frames:v", str(frames),
    ]  # fmt: skip
    done = replace(
        report, trimmed=max(0.0, source - length), slowdown=slowdown, held=round(held, 3)
    )
    return _write(args, done, spec, progress, exe)


def _picture_chain(
    info: MediaDetails, spec: PlatformSpec, frames: int, slowdown: float, held: float
) -> str:
    """Filters making exactly ``frames`` frames of the platform's from the source's picture:
    slowed by ``slowdown``, its last frame repeated for ``held`` seconds, then cut."""
    steps = []
    if slowdown > 1.0:
        steps.append(f"setpts=(PTS-STARTPTS)*{slowdown:.6f}")
    rate = f"fps={spec.fps}"
    fit = fit_frame(spec, (info.width, info.height))
    # Fewer frames to scale: the rate is changed first when it drops, after when it rises.
    steps += [rate, fit] if (info.fps or 0.0) > spec.fps else [fit, rate]
    steps.append("format=yuv420p")
    # Always more than needed, so the cut below decides the length: the rate change may end
    # a frame short of the slowed length, and the probed duration (the longest stream's) can
    # overstate the picture's when the sound runs on. Spare clones are cut, never encoded.
    steps.append(f"tpad=stop_mode=clone:stop_duration={held + HOLD_SPARE:.4f}")
    steps.append(f"trim=end_frame={frames},setpts=PTS-STARTPTS")
    return ",".join(steps)


def _sound_chain(length: float, slowdown: float) -> str:
    """Filters making the clip's own sound exactly ``length`` long at 48 kHz stereo: slowed
    with the picture (pitch kept), padded with silence, cut."""
    tempo = f",atempo={1 / slowdown:.6f}" if slowdown > 1.0 else ""
    return (
        f"{AUDIO_FORMAT}{tempo},apad=whole_dur={length:.4f},atrim=end={length:.4f},"
        "asetpts=PTS-STARTPTS"
    )


def _write(
    args: list[str],
    report: ConformReport,
    spec: PlatformSpec,
    progress: ffmpeg.ProgressCallback | None,
    exe: str | None,
) -> ConformReport:
    """Run FFmpeg into a temporary file beside ``report.path``, renamed to it once it lasts as
    asked; ``report`` with the written clip's details. A failed, stopped or short run leaves no
    clip behind (and the destination may be the source itself)."""
    dst = report.path
    dst.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.stem}-", suffix=".mp4")
    os.close(handle)
    partial = Path(name)
    try:
        ffmpeg.run(
            [*args, "-movflags", "+faststart", str(partial)],
            duration=report.seconds,
            on_progress=progress,
            exe=exe,
        )
        output = details(partial, exe)
        # A frame, plus an AAC frame of sound (1024 samples) that may outlast the picture.
        slack = 1 / spec.fps + 1024 / 48000
        if abs(output.duration - report.seconds) > slack:
            raise MediaError(
                f"conforming gave {output.duration:.3f} s instead of {report.seconds:.3f} s: "
                f"the source probably holds less than the {report.source_seconds:.2f} s it "
                "claims"
            )
        os.replace(partial, dst)
    finally:
        partial.unlink(missing_ok=True)
    return replace(report, output=output)
