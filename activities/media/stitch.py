"""Join scene clips in order: stream copy when they match, else one re-encode, or crossfades.

Transitions *overlap* neighbouring clips (nothing is padded or frozen): with ``n`` clips of
durations ``d_i`` and a transition of ``t`` seconds the result lasts ``sum(d_i) - (n-1)*t``.
Scene ``i`` (0-based) therefore starts at ``sum(d_0..d_{i-1}) - i*t``; :func:`scene_starts`
gives those times so narration can follow the picture.

Deciding how to join needs each clip's details. The clip stage probes every clip it makes and
records them (:func:`clip_media`); callers pass those back as ``known`` and only clips without
(or with stale) details are probed here, side by side.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from activities.media import ffmpeg
from activities.media.audio import AUDIO_FORMAT, Soundtrack
from activities.media.export import MediaDetails, clip_encoding, details, fit_frame
from activities.media.overlay import CaptionLayer, caption_layer
from storyreel.contracts import TRANSITIONS, ClipMedia, PlatformSpec
from storyreel.errors import BadInputError, MediaError
from storyreel.settings import DEFAULT_PRESET, Preset

# What asks for hard cuts instead of a transition.
TRANSITIONLESS = frozenset({None, "", "none"})
SOUND = ["-c:a", "aac", "-b:a", "192k"]
# How the clips were joined: streams copied as they are, re-encoded, or cross-faded.
JoinMode = Literal["copy", "reencode", "xfade"]
# Probes are mostly process start-up and waiting on the file: a few at once pay off even on
# a small machine, and more than this gains nothing.
PROBE_WORKERS = 8


@dataclass(frozen=True)
class StitchReport:
    """How the clips were joined and how long the result is (measured vs the formula).

    ``duration`` is probed from a re-encoded result (``output`` holds what the probe said);
    a stream copy's comes from the clips and FFmpeg's own account of what it wrote (within a
    frame of a probe).
    """

    path: Path
    mode: JoinMode
    clips: int
    duration: float
    expected_duration: float
    transition: str | None
    transition_seconds: float
    has_audio: bool
    seconds: float
    durations: tuple[float, ...] = ()
    poster_at: float = 0.0
    output: MediaDetails | None = None

    def scene_spans(self) -> list[tuple[float, float]]:
        """``(start, end)`` of each scene's own time in the result: from where it starts until
        the next one starts (a crossfade belongs to the scene fading in)."""
        return scene_spans(self.durations, self.transition_seconds, self.duration)


def expected_duration(durations: Sequence[float], transition_seconds: float) -> float:
    """Length of the stitched video: transitions overlap, so each one takes ``t`` off the sum."""
    return sum(durations) - max(0, len(durations) - 1) * transition_seconds


def scene_starts(durations: Sequence[float], transition_seconds: float) -> list[float]:
    """When each scene begins in the stitched video (a crossfade starts it ``t`` early)."""
    starts, clock = [], 0.0
    for duration in durations:
        starts.append(clock)
        clock += duration - transition_seconds
    return starts


def scene_spans(
    durations: Sequence[float], transition_seconds: float, end: float
) -> list[tuple[float, float]]:
    """``(start, end)`` of each scene: from where it starts until the next one does (the last
    until ``end``)."""
    starts = scene_starts(durations, transition_seconds)
    return list(zip(starts, [*starts[1:], end], strict=True))


def poster_frame(spans: Sequence[tuple[float, float]], transition_seconds: float, fps: int) -> int:
    """The frame that represents the video: the middle of the scene playing at the video's
    midpoint, clear of its fade-in (never inside a crossfade)."""
    middle = spans[-1][1] / 2
    moment = middle
    for index, (start, end) in enumerate(spans):
        if start <= middle < end:
            clear = start + (transition_seconds if index else 0.0)  # after its fade-in
            moment = (min(clear, end) + end) / 2
            break
    return round(moment * fps)


def clip_media(info: MediaDetails) -> ClipMedia:
    """The facts of a probed clip worth carrying to the stitch step (plain, JSON-friendly)."""
    return ClipMedia.model_validate(info.model_dump(include=set(ClipMedia.model_fields)))


def known_details(media: ClipMedia | None) -> MediaDetails | None:
    """Recorded facts back as :class:`MediaDetails` for :func:`stitch`'s ``known``."""
    return None if media is None else MediaDetails.model_validate(media.model_dump())


def _trusted(known: MediaDetails | None, clip: Path) -> bool:
    """Whether recorded details are of this very file: same size on disk (one ``stat``)."""
    if known is None or known.size_bytes <= 0:
        return False
    try:
        return clip.stat().st_size == known.size_bytes
    except OSError:
        return False  # the probe will say what is wrong with it


def clip_details(
    clips: Sequence[Path],
    known: Sequence[MediaDetails | None] | None = None,
    exe: str | None = None,
) -> list[MediaDetails]:
    """Details of every clip: the ``known`` ones whose file still matches, the others probed
    (concurrently: each probe is an FFmpeg start-up of some tens of milliseconds)."""
    if known is None:
        known = [None] * len(clips)
    elif len(known) != len(clips):
        raise BadInputError(f"details for {len(known)} clips given to stitch {len(clips)}")
    infos: list[MediaDetails | None] = [
        info if _trusted(info, clip) else None for clip, info in zip(clips, known, strict=True)
    ]
    missing = [index for index, info in enumerate(infos) if info is None]
    if len(missing) == 1:
        infos[missing[0]] = details(clips[missing[0]], exe)
    elif missing:
        with ThreadPoolExecutor(min(len(missing), PROBE_WORKERS)) as pool:
            probed = pool.map(lambda index: details(clips[index], exe), missing)
            for index, info in zip(missing, probed, strict=True):
                infos[index] = info
    return [info for info in infos if info is not None]


def _uniform(infos: Sequence[MediaDetails], spec: PlatformSpec) -> bool:
    """Whether the concat demuxer may copy: one codec, size, rate and audio layout throughout."""
    audio = {(i.audio_codec, i.audio_sample_rate, i.audio_channels) for i in infos}
    profiles = {i.video_profile for i in infos}
    return len(audio) == len(profiles) == 1 and all(
        i.video_codec == "h264"
        and i.pix_fmt == "yuv420p"
        and (i.width, i.height) == (spec.width, spec.height)
        and i.fps is not None
        and abs(i.fps - spec.fps) < 0.01
        for i in infos
    )


def _listing(clips: Sequence[Path], target: Path) -> Path:
    quoted = (str(clip.resolve()).replace("'", "'\\''") for clip in clips)
    target.write_text("".join(f"file '{path}'\n" for path in quoted), encoding="utf-8")
    return target


def _graph(
    infos: Sequence[MediaDetails],
    spec: PlatformSpec,
    transition: str | None,
    seconds: float,
    captions: Sequence[CaptionLayer | None],
    sound: str = "a",
) -> tuple[str, bool]:
    """A filter graph ending in ``[v]`` (and ``[sound]`` if any clip has sound).

    Each clip's caption (``None``: none) is drawn as the overlay step draws it: its layer
    (band and text, drawn once in this same graph) laid over every frame."""
    with_audio = any(info.audio_codec for info in infos)
    parts = []
    for index, (info, caption) in enumerate(zip(infos, captions, strict=True)):
        chain = f"[{index}:v:0]{fit_frame(spec, (info.width, info.height))}"
        if caption is not None:
            parts.append(f"{chain}[b{index}]")
            chain = caption.over(f"b{index}")
        parts.append(f"{chain},fps={spec.fps},format=yuv420p,setpts=PTS-STARTPTS[v{index}]")
        if not with_audio:
            continue
        # Every clip gets a track of exactly its own length, silent if it has none, so the
        # audio joins stay aligned with the picture.
        if info.audio_codec:
            parts.append(
                f"[{index}:a:0]{AUDIO_FORMAT},apad=whole_dur={info.duration:.3f},"
                f"atrim=end={info.duration:.3f},asetpts=PTS-STARTPTS[a{index}]"
            )
        else:
            parts.append(
                f"anullsrc=r=48000:cl=stereo:d={info.duration:.3f},{AUDIO_FORMAT}[a{index}]"
            )
    if transition is None:
        streams = "".join(f"[v{i}]" + (f"[a{i}]" if with_audio else "") for i in range(len(infos)))
        outputs = f"[v][{sound}]" if with_audio else "[v]"
        parts.append(f"{streams}concat=n={len(infos)}:v=1:a={int(with_audio)}{outputs}")
        return ";".join(parts), with_audio
    video, audio, clock = "v0", "a0", infos[0].duration
    for index in range(1, len(infos)):
        last = index == len(infos) - 1
        joined_video, joined_audio = ("v", sound) if last else (f"xv{index}", f"xa{index}")
        parts.append(
            f"[{video}][v{index}]xfade=transition={transition}:duration={seconds:.3f}"
            f":offset={clock - seconds:.3f}[{joined_video}]"
        )
        if with_audio:
            parts.append(f"[{audio}][a{index}]acrossfade=d={seconds:.3f}[{joined_audio}]")
        video, audio = joined_video, joined_audio
        clock += infos[index].duration - seconds
    return ";".join(parts), with_audio


def _caption_layers(
    texts: Sequence[str], spec: PlatformSpec, work: Path, font: Path | None
) -> list[CaptionLayer | None]:
    """Each clip's caption as a layer drawn inside the join's own graph (no run of its own)."""
    return [
        caption_layer(text, spec, work / f"caption-{index}.txt", f"caption{index}", font)
        for index, text in enumerate(texts)
    ]


def stitch(
    clips: list[Path],
    dst: Path,
    platform: PlatformSpec,
    *,
    transition: str | None = "fade",
    transition_seconds: float = 0.5,
    on_progress: ffmpeg.ProgressCallback | None = None,
    exe: str | None = None,
    threads: int | None = None,
    preset: Preset = DEFAULT_PRESET,
    known: Sequence[MediaDetails | None] | None = None,
    captions: Sequence[str | None] | None = None,
    font: Path | None = None,
    soundtrack: Soundtrack | None = None,
) -> StitchReport:
    """Join ``clips`` in the given order into ``dst`` at the platform's size and rate.

    Without a transition (``None`` or ``"none"``) matching clips are stream-copied through the
    concat demuxer, anything else is re-encoded once. With one, consecutive clips crossfade
    (``xfade``/``acrossfade``), overlapping by ``transition_seconds`` — shortened to half the
    shortest clip if needed; the report gives the value used and the expected duration.

    ``known`` gives details already probed, per clip (``None``: unknown); they are used when
    the file's size still matches, every other clip is probed.

    ``captions`` (per clip, ``None`` or empty: none) are burnt in within the same pass, exactly
    as :func:`overlay.overlay_caption` draws them: a join that re-encodes anyway (a transition)
    then costs one encode instead of a captioning encode per clip plus the join's. Captions
    rule out a stream copy.

    ``soundtrack`` (speech per clip, music) is mixed over the clips' own sound in the same
    run, each scene's speech from where the scene starts: the result then always has sound,
    and needs no mixing pass of its own. A stream copy copies the picture only.
    """
    if not clips:
        raise BadInputError("no clips to stitch")
    if captions is not None and len(captions) != len(clips):
        raise BadInputError(f"{len(captions)} captions given to stitch {len(clips)} clips")
    texts = [text or "" for text in captions or [None] * len(clips)]
    if transition in TRANSITIONLESS or len(clips) == 1 or transition_seconds <= 0:
        transition = None
    elif transition not in TRANSITIONS:
        raise BadInputError(
            f"unknown transition {transition!r}; use one of {', '.join(sorted(TRANSITIONS))}"
        )
    began = time.monotonic()
    infos = clip_details(clips, known, exe)
    if missing := [clip.name for clip, info in zip(clips, infos, strict=True) if not info.width]:
        raise MediaError(f"no video stream in {', '.join(missing)}")
    seconds = 0.0
    if transition is not None:
        seconds = min(transition_seconds, min(info.duration for info in infos) / 2)
    durations = [info.duration for info in infos]
    expected = expected_duration(durations, seconds)
    spans = scene_spans(durations, seconds, expected)
    poster = poster_frame(spans, seconds, platform.fps)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dst.parent, prefix=".stitch-") as work:
        mode: JoinMode
        if transition is None and not any(texts) and _uniform(infos, platform):
            mode, with_audio = "copy", infos[0].audio_codec is not None
            listing = _listing(clips, Path(work) / "clips.txt")
            args = ["-f", "concat", "-safe", "0", "-i", str(listing)]
            if soundtrack is None:
                args += ["-map", "0", "-c", "copy"]
            else:
                own = "0:a:0" if with_audio else None
                extra, chains = soundtrack.graph(1, own, spans)
                args += [
                    *extra, "-filter_complex", ";".join(chains), "-map", "0:v:0", "-map", "[a]",
                    "-c:v", "copy", *SOUND,
                ]  # fmt: skip
                with_audio = True
        else:
            mode = "reencode" if transition is None else "xfade"
            layers = _caption_layers(texts, platform, Path(work), font)
            sound = "a" if soundtrack is None else "clips"
            graph, with_audio = _graph(infos, platform, transition, seconds, layers, sound)
            inputs = [arg for clip in clips for arg in ("-i", str(clip))]
            if soundtrack is not None:
                extra, chains = soundtrack.graph(len(clips), sound if with_audio else None, spans)
                inputs += extra
                graph = ";".join([graph, *chains])
                with_audio = True
            audio = ["-map", "[a]", *SOUND] if with_audio else []
            # A keyframe on the poster frame: grabbing the thumbnail then decodes a frame or
            # two, not everything since the last keyframe (up to 250 frames at 1080x1920).
            args = [
                *inputs, "-filter_complex", graph, "-map", "[v]",
                *clip_encoding(platform, threads, preset),
                "-force_key_frames", f"expr:eq(n,{poster})",
                *audio,
            ]  # fmt: skip
        written = ffmpeg.run(
            [*args, "-movflags", "+faststart", str(dst)],
            duration=expected,
            on_progress=on_progress,
            exe=exe,
            end_time=mode == "copy",
        )
    output: MediaDetails | None = None
    if mode == "copy":
        # The concat demuxer lays each clip after the previous one's whole duration, so the
        # result lasts their sum; FFmpeg's last out_time says the same, or a bit more when the
        # last clip's sound runs past its picture (it lags by the B-frame delay otherwise).
        # Either way within a frame of a probe of the output, without paying for one.
        duration = max(expected, written or 0.0)
    else:
        output = details(dst, exe)  # what the export would probe again otherwise
        duration = output.duration
    return StitchReport(
        path=dst,
        mode=mode,
        clips=len(clips),
        duration=duration,
        expected_duration=expected,
        transition=transition,
        transition_seconds=seconds,
        has_audio=with_audio,
        seconds=time.monotonic() - began,
        durations=tuple(durations),
        # Just after the poster frame starts: a seek there lands on its keyframe, whatever
        # the rounding of the time given to FFmpeg, and yields the frame after it.
        poster_at=min((poster + 0.5) / platform.fps, max(0.0, duration - 1 / platform.fps)),
        output=output,
    )
