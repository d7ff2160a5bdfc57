"""Assembly and publish stages: the clips become the finished, platform-ready video.

``stitch_video`` runs, in order: fetch the clips -> speech through the configured TTS (the
scenes side by side) -> burn captions (in parallel, falling back to one by one) -> stitch in
scene order with a transition, in one FFmpeg run that also mixes the sound (each scene's speech
where it starts, the music bed and the clips' own sound ducked under it, or that sound kept as
it is or dropped: ``clip_audio``) -> platform export (nothing to rewrite when the
stitch already wrote the deliverable) -> duration limit -> thumbnail (grabbed from the joined
video while it is exported and uploaded) -> metadata. With a crossfade the captions are drawn in
the stitch's own pass too. It is a sync activity on the worker's executor and heartbeats
``{"step", "progress"}`` from its own thread all along, so a cancellation reaches it and every
FFmpeg it started dies with it; its temp directory goes on every way out."""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from temporalio import activity

from activities.media import ffmpeg
from activities.media.audio import TTS, EspeakTTS, SilentTTS, Soundtrack, speech_seconds
from activities.media.export import MediaDetails, check_duration, export, thumbnail
from activities.media.overlay import OverlayJob, OverlayReport, overlay_all
from activities.media.stitch import TRANSITIONLESS, StitchReport, known_details, stitch
from activities.media.words import Word, spread_words
from storyreel.contracts import (
    PLATFORMS,
    AssemblyClip,
    GenerationState,
    PlatformSpec,
    PublishInput,
    PublishResult,
    StitchInput,
    StitchResult,
)
from storyreel.errors import BadInputError, StorageKeyError
from storyreel.keys import record_key, thumbnail_key, video_key
from storyreel.settings import DEFAULT_PRESET, Preset
from storyreel.storage import Storage

logger = logging.getLogger(__name__)

Observer = Callable[[GenerationState], None]
# Scenes spoken at once (local TTS processes, or requests to a speech server).
SPEECH_WORKERS = 4

SILENT_NARRATION = (
    "narration was asked for, but this worker's voice is silent (STORYREEL_TTS_PROVIDER=silent, "
    "or espeak-ng is not installed): the video has no speech"
)


@dataclass(frozen=True)
class FinishingOptions:
    """How this worker finishes videos (from its settings); requests choose what, not how."""

    tts: TTS | None = None
    font: Path | None = None
    threads: int | None = None
    preset: Preset = DEFAULT_PRESET
    overlay_parallel: bool = True
    overlay_max_workers: int = 0
    music_volume: float = 0.35


def _beat(step: str, fraction: float | None = None) -> None:
    details: dict[str, object] = {"step": step}
    if fraction is not None:
        details["progress"] = round(fraction * 100, 1)
    activity.heartbeat(details)


def _progress(step: str) -> ffmpeg.ProgressCallback:
    """An FFmpeg progress callback that heartbeats (called on the activity's own thread)."""
    return lambda fraction: _beat(step, fraction)


class _Steps:
    """Seconds per step, for the result's ``step_seconds`` and the logs."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        _beat(name, 0.0)
        began = time.monotonic()
        try:
            yield
        finally:
            self.seconds[name] = round(time.monotonic() - began, 3)


@dataclass(frozen=True)
class _Captions:
    """How a run's captions are drawn: on each clip (``paths`` are the captioned copies, and
    ``overlay`` how), inline in the stitch's own pass, or not at all."""

    paths: list[Path]
    inline: bool
    overlay: OverlayReport | None = None


@dataclass(frozen=True)
class _Delivered:
    """The exported video and its thumbnail, in storage."""

    key: str
    thumbnail_key: str
    info: MediaDetails


def _crossfades(request: StitchInput, clips: int) -> bool:
    """Whether the join will crossfade (so re-encode every frame), as :func:`stitch` decides."""
    return clips > 1 and request.transition_seconds > 0 and request.transition not in TRANSITIONLESS


class AssemblyActivities:
    """The media-queue activities that finish and record a generation."""

    def __init__(
        self,
        storage: Storage,
        work_root: Path,
        ffmpeg_exe: str | None = None,
        options: FinishingOptions | None = None,
        on_published: Observer | None = None,
    ) -> None:
        self.storage = storage
        self.work_root = work_root
        self.ffmpeg_exe = ffmpeg_exe
        self.options = options or FinishingOptions()
        self.tts: TTS = self.options.tts or SilentTTS(ffmpeg_exe)
        self.on_published = on_published

    @activity.defn(name="stitch_video")
    def stitch_video(self, request: StitchInput) -> StitchResult:
        """Finish the video: captions, transitions, narration and music, platform export."""
        clips = request.clips
        if not clips:
            raise BadInputError("no clips to stitch")
        spec = PLATFORMS[request.platform]
        steps = _Steps()
        self.work_root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.work_root, prefix="assemble-") as work:
            workdir = Path(work)
            with steps("fetch"):
                music = self._fetch_music(request.music, workdir)
                voice_over = None
                if request.voice_key is not None:
                    voice_over = workdir / "voice-over"
                    self.storage.get_file(request.voice_key, voice_over)
                fetched = self._fetch_clips(clips, workdir)
            spoken = self._narrate(request, workdir, steps)
            captions = self._caption(request, fetched, spoken, spec, workdir, steps)
            soundtrack = self._soundtrack(request, spoken, music, voice_over)
            joined = self._join(request, fetched, captions, soundtrack, spec, workdir, steps)
            delivered = self._deliver(request, joined, spec, workdir, steps)
        result = self._result(request, joined, delivered, captions, music is not None, steps)
        activity.logger.info(
            "assembled %s: %d clips, %.2f s, join %s, overlays %s, steps %s",
            request.generation_id,
            len(clips),
            result.duration,
            result.mode,
            result.overlay_mode or "off",
            ", ".join(f"{name} {seconds:.2f} s" for name, seconds in steps.seconds.items()),
        )
        return result

    def _narrate(
        self, request: StitchInput, workdir: Path, steps: _Steps
    ) -> list[Path | None] | None:
        """Speech first: word captions follow the very audio that will be heard, and the stitch
        mixes it in its own pass. None when the request asks for no narration."""
        own = [clip.voice_key for clip in request.clips]
        if request.voice_key is not None or not (request.narration or any(own)):
            return None  # the caller's whole-run narration (the soundtrack's), or none at all
        voice = self._voice(request)
        with steps("speech"):
            spoken = self._speak(request.clips, voice, workdir) if request.narration else None
        with steps("fetch"):
            # The caller's own narration of a scene wins over the TTS voice's.
            said: list[Path | None] = list(spoken or [None] * len(request.clips))
            for index, key in enumerate(own):
                if key is not None:
                    recorded = workdir / f"voice-{index + 1:03d}"
                    self.storage.get_file(key, recorded)
                    said[index] = recorded
            return said

    def _caption(
        self,
        request: StitchInput,
        fetched: list[Path],
        spoken: list[Path | None] | None,
        spec: PlatformSpec,
        workdir: Path,
        steps: _Steps,
    ) -> _Captions:
        """How the captions are drawn, and the clips to join (captioned copies, or as fetched).

        A crossfade re-encodes every frame anyway: the captions are drawn in that same pass
        (one encode instead of one per clip plus the join's). Hard cuts, and word captions (a
        filter per word), keep the captioning encode per clip, in parallel."""
        clips = request.clips
        words = self._word_times(clips, fetched, spoken) if request.captions == "words" else None
        captioned = bool(request.captions and (words or any(clip.caption for clip in clips)))
        inline = captioned and not words and _crossfades(request, len(clips))
        if not captioned or inline:
            return _Captions(paths=fetched, inline=inline)
        with steps("overlay"):
            paths, overlay = self._captions(clips, fetched, spec, workdir, words)
        return _Captions(paths=paths, inline=False, overlay=overlay)

    def _soundtrack(
        self,
        request: StitchInput,
        spoken: list[Path | None] | None,
        music: Path | None,
        voice_over: Path | None,
    ) -> Soundtrack | None:
        """What the stitch mixes in; dropping the clips' own sound takes a mix too (of silence,
        in the same run)."""
        if spoken is None and music is None and voice_over is None and request.clip_audio != "drop":
            return None
        return Soundtrack(
            spoken or [],
            music,
            self.options.music_volume,
            clip_audio=request.clip_audio,
            voice_over=voice_over,
        )

    def _join(
        self,
        request: StitchInput,
        fetched: list[Path],
        captions: _Captions,
        soundtrack: Soundtrack | None,
        spec: PlatformSpec,
        workdir: Path,
        steps: _Steps,
    ) -> StitchReport:
        """The clips in scene order with the transition, in one FFmpeg run with the sound."""
        clips = request.clips
        with steps("stitch"):
            return stitch(
                captions.paths,
                workdir / "stitched.mp4",
                spec,
                transition=request.transition,
                transition_seconds=request.transition_seconds,
                on_progress=_progress("stitch"),
                exe=self.ffmpeg_exe,
                threads=self.options.threads,
                preset=self.options.preset,
                # What the clip stage recorded holds for the files it probed (stitch checks
                # each one's size before trusting it); a captioned clip is a new file.
                known=[
                    known_details(clip.media) if path == original else None
                    for clip, path, original in zip(clips, captions.paths, fetched, strict=True)
                ],
                captions=[clip.caption for clip in clips] if captions.inline else None,
                font=self.options.font,
                soundtrack=soundtrack,
            )

    def _deliver(
        self,
        request: StitchInput,
        joined: StitchReport,
        spec: PlatformSpec,
        workdir: Path,
        steps: _Steps,
    ) -> _Delivered:
        """Platform export, duration limit, upload, thumbnail. The poster frame is grabbed
        from the joined video while it is exported and uploaded (off the critical path)."""
        with ThreadPoolExecutor(1, thread_name_prefix="poster") as grabber:
            poster = grabber.submit(
                thumbnail,
                joined.path,
                workdir / "thumbnail.jpg",
                joined.poster_at,
                exe=self.ffmpeg_exe,
            )
            with steps("export"):
                final = workdir / "video.mp4"
                info = export(
                    joined.path,
                    final,
                    spec,
                    on_progress=_progress("export"),
                    exe=self.ffmpeg_exe,
                    threads=self.options.threads,
                    preset=self.options.preset,
                    faststart=True,
                    known=joined.output,
                )
                check_duration(info.duration, request.platform)
            with steps("upload"):
                # The video goes up while the poster frame is still being grabbed.
                key = video_key(request.generation_id)
                self.storage.put_file(key, final)
            with steps("thumbnail"):
                thumb_key = thumbnail_key(request.generation_id)
                self.storage.put_file(thumb_key, poster.result())
        return _Delivered(key=key, thumbnail_key=thumb_key, info=info)

    def _result(
        self,
        request: StitchInput,
        joined: StitchReport,
        delivered: _Delivered,
        captions: _Captions,
        music: bool,
        steps: _Steps,
    ) -> StitchResult:
        spec = PLATFORMS[request.platform]
        info, overlay = delivered.info, captions.overlay
        return StitchResult(
            key=delivered.key,
            duration=info.duration,
            width=info.width or spec.width,
            height=info.height or spec.height,
            stream_copy=joined.mode == "copy",
            thumbnail_key=delivered.thumbnail_key,
            mode=joined.mode,
            overlay_mode="inline" if captions.inline else overlay.mode if overlay else None,
            overlay_seconds=round(overlay.seconds, 3) if overlay else 0.0,
            fps=info.fps,
            video_codec=info.video_codec,
            audio_codec=info.audio_codec,
            size_bytes=info.size_bytes,
            bit_rate=info.bit_rate,
            transition=joined.transition,
            transition_seconds=joined.transition_seconds,
            narration=request.narration,
            music=music,
            step_seconds=steps.seconds,
            warnings=[SILENT_NARRATION]
            if request.narration and isinstance(self.tts, SilentTTS)
            else [],
        )

    def _fetch_music(self, key: str | None, workdir: Path) -> Path | None:
        """The music bed, fetched first: a wrong key fails before any encoding is paid for."""
        if key is None:
            return None
        local = workdir / f"music{PurePosixPath(key).suffix[:8]}"
        try:
            self.storage.get_file(key, local)
        except StorageKeyError:
            raise BadInputError(
                f"music: no track at {key!r} in storage; upload it first, or leave 'music' out"
            ) from None
        return local

    def _fetch_clips(self, clips: list[AssemblyClip], workdir: Path) -> list[Path]:
        paths: list[Path] = []
        for number, clip in enumerate(clips, start=1):
            local = workdir / f"clip-{number:03d}.mp4"
            self.storage.get_file(clip.key, local)
            paths.append(local)
            _beat("fetch", number / len(clips))
        return paths

    def _voice(self, request: StitchInput) -> str | None:
        """The request's voice; else its language, which names an espeak-ng voice."""
        if request.voice or not isinstance(self.tts, EspeakTTS):
            return request.voice
        return request.language

    def _speak(
        self, clips: list[AssemblyClip], voice: str | None, workdir: Path
    ) -> list[Path | None]:
        """Each scene's speech (``None`` where nothing is said), the scenes side by side: a
        TTS call is mostly waiting on a process or a server."""
        texts = [(clip.narration_text or "").strip() for clip in clips]
        wanted = [index for index, text in enumerate(texts) if text]
        spoken: list[Path | None] = [None] * len(clips)
        if not wanted:
            return spoken
        pool = ThreadPoolExecutor(min(len(wanted), SPEECH_WORKERS), "speech")
        try:
            futures = {
                pool.submit(
                    self.tts.synthesize,
                    clips[index].narration_text or "",
                    workdir / f"speech-{index + 1:03d}.wav",
                    voice,
                ): index
                for index in wanted
            }
            # Heartbeats from this (the activity's) thread, as each scene is done.
            for done, future in enumerate(as_completed(futures), start=1):
                spoken[futures[future]] = future.result()
                _beat("speech", done / len(wanted))
        finally:
            # On a cancellation or a failure, scenes not yet started are not spoken at all.
            pool.shutdown(cancel_futures=True)
        return spoken

    def _word_times(
        self, clips: list[AssemblyClip], paths: list[Path], spoken: list[Path | None] | None
    ) -> list[tuple[Word, ...] | None]:
        """When each word of each scene's narration is said: spread by character count over
        the length of the scene's speech (or, without narration, over the time it would take
        at the planner's 2.5 words per second), never past the end of the clip."""
        out: list[tuple[Word, ...] | None] = []
        for index, (clip, path) in enumerate(zip(clips, paths, strict=True)):
            text = clip.narration_text or clip.caption or ""
            if not text.strip():
                out.append(None)
                continue
            speech = spoken[index] if spoken is not None else None
            seconds = (
                ffmpeg.probe(speech, self.ffmpeg_exe).duration if speech else speech_seconds(text)
            )
            length = (
                clip.media.duration if clip.media else ffmpeg.probe(path, self.ffmpeg_exe).duration
            )
            out.append(tuple(spread_words(text, min(seconds, max(0.5, length - 0.1)))))
        return out

    def _captions(
        self,
        clips: list[AssemblyClip],
        paths: list[Path],
        spec: PlatformSpec,
        workdir: Path,
        words: list[tuple[Word, ...] | None] | None = None,
    ) -> tuple[list[Path], OverlayReport]:
        """Caption the clips that have one (or words to highlight); the others join as they
        are."""
        jobs: list[OverlayJob] = []
        out = list(paths)
        for number, (clip, path) in enumerate(zip(clips, paths, strict=True), start=1):
            timed = words[number - 1] if words is not None else None
            if clip.caption or timed:
                target = workdir / f"captioned-{number:03d}.mp4"
                jobs.append(
                    OverlayJob(
                        path,
                        target,
                        clip.caption or "",
                        spec,
                        self.options.font,
                        timed,
                        self.options.preset,
                    )
                )
                out[number - 1] = target
        report = overlay_all(
            jobs,
            parallel=self.options.overlay_parallel,
            max_workers=self.options.overlay_max_workers or None,
            on_progress=_progress("overlay"),
            exe=self.ffmpeg_exe,
        )
        if report.mode == "fallback":
            activity.logger.warning(
                "parallel captions failed (%s); they were made one by one", report.fallback_reason
            )
        return out, report

    @activity.defn(name="publish_generation")
    def publish_generation(self, request: PublishInput) -> PublishResult:
        """Write the generation's record next to its media (idempotent: same key, same body)."""
        state = request.state
        key = record_key(state.generation_id)
        self.work_root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.work_root, prefix="publish-") as work:
            body = Path(work) / "generation.json"
            body.write_text(state.model_dump_json(indent=2), encoding="utf-8")
            self.storage.put_file(key, body)
        if self.on_published is not None:
            try:
                self.on_published(state)
            except Exception:
                # Metrics and logs must never fail (and so retry) the publish itself.
                logger.exception("recording the metrics of %s failed", state.generation_id)
        return PublishResult(record_key=key)
