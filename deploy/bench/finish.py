"""B5b: the finish every default run takes, against one hand-written FFmpeg command and MoviePy.

    python deploy/bench/bench.py --only B5b [--b5b-clips 5] [--b5b-seconds 6]

Five 6 s 1080x1920 clips from the local renderer (made once, untimed) are finished three ways
into the same kind of file: each scene's caption on its band in the safe area, ``fade``
crossfades of 0.5 s, a narration track, H.264 (libx264 ``veryfast``, CRF 23, High, yuv420p,
30 fps) and AAC 192k in an MP4 with ``+faststart`` at TikTok's 1080x1920.

- ours: the assembly activity itself (``AssemblyActivities.stitch_video`` under Temporal's
  ``ActivityEnvironment``), with the options and the TTS a worker builds from default
  settings (silent narration, or espeak-ng when installed), asked exactly what a default
  TikTok run asks plus narration;
- single pass: one ``ffmpeg`` command a person would write (drawbox + drawtext, an xfade chain,
  the narration WAV as the soundtrack);
- MoviePy 2: ``TextClip`` captions on a 55 % black ``ColorClip`` band, ``CrossFadeIn``
  overlaps, the narration WAV, ``write_videofile`` with the same codec, preset and CRF.

Audio: all three sides get the same narration. Ours makes it through the worker's TTS inside
the timed run (the real path); the other two get the WAV that the same code makes from the
same texts and timings, made before timing starts, so the comparison favours them slightly.

Each side's wall time and CPU time (its own and its FFmpeg children's) are taken; ours and the
single pass alternate over rounds (median counts), MoviePy runs once. A mid-frame of each
output is kept as a PNG, and each output is probed, so the three can be checked to match.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from temporalio.testing import ActivityEnvironment

from activities.assembly import AssemblyActivities
from activities.media import ffmpeg
from activities.media.audio import narration_track
from activities.media.export import details
from activities.media.layout import LINE_HEIGHT_EM, caption_box, wrap_caption
from activities.media.stitch import clip_media, expected_duration, scene_spans, scene_starts
from activities.providers import LocalClipProvider
from activities.providers.base import ClipJob
from storyreel.contracts import PLATFORMS, AssemblyClip, Platform, StitchInput
from storyreel.settings import Settings
from storyreel.storage import LocalStorage
from worker import build_tts, finishing_options

Results = dict[str, Any]
PLATFORM = Platform.tiktok
SPEC = PLATFORMS[PLATFORM]
TRANSITION = "fade"
OVERLAP = 0.5
CRF = 23  # libx264's default, which our encodes use
# The other two sides encode at the preset ours does (STORYREEL_FFMPEG_PRESET, veryfast unless
# set), so the comparison is of the work each does, not of the preset.
SCENES = (
    "The keeper climbs the winding stairs as the fog rolls in",
    "Gulls wheel over the harbour while the boats come home",
    "The lamp is lit and its beam sweeps across the water",
    "A trawler turns toward the light through the rising swell",
    "Morning comes and the keeper writes the night in his log",
)


def captions(count: int) -> list[str]:
    return [f"{n + 1}. {SCENES[n % len(SCENES)]}" for n in range(count)]


def cpu_seconds() -> float:
    """CPU time of this process and of its waited-for children (FFmpeg) so far."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(side: Callable[[], Path]) -> tuple[float, float, Path]:
    """Wall and CPU seconds of one run of ``side`` (which writes and returns its output)."""
    cpu, began = cpu_seconds(), time.monotonic()
    out = side()
    return time.monotonic() - began, cpu_seconds() - cpu, out


def make_clips(work: Path, count: int, seconds: float) -> list[Path]:
    """The local renderer's clips, as the clip stage makes them (B5 uses the same)."""
    provider = LocalClipProvider()
    work.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(1, count + 1):
        job = ClipJob("bench", index, "p", f"Scene {index}", seconds, SPEC, "local", index, None,
                      work)  # fmt: skip
        paths.append(provider.render(f"b5b-{index}", job, lambda _s, _p: None))
    return paths


class Finish:
    """The three sides over the same clips, captions and narration."""

    def __init__(self, work: Path, clips: list[Path]) -> None:
        self.work = work
        self.clips = clips
        self.captions = captions(len(clips))
        self.settings = Settings(_env_file=None)
        self.tts = build_tts(self.settings)
        self.storage = LocalStorage(work / "media")
        self.assembly_clips = []
        for index, (path, caption) in enumerate(zip(clips, self.captions, strict=True), 1):
            key = f"generations/b5b/clips/{index:03d}.mp4"
            self.storage.put_file(key, path)
            # What the clip stage records with each clip (it probes what it made).
            media = clip_media(details(self.storage.path(key)))
            self.assembly_clips.append(
                AssemblyClip(key=key, clip_id=index, caption=caption, narration_text=caption,
                             media=media)
            )  # fmt: skip
        self.durations = [details(path).duration for path in clips]
        # What the assembly asks for; stitch shortens it to half the shortest clip if need be.
        self.overlap = min(OVERLAP, min(self.durations) / 2)
        self.length = expected_duration(self.durations, self.overlap)
        self.narration = self._narration()

    def _narration(self) -> Path:
        """The narration the assembly makes, made once for the other two sides."""
        spans = scene_spans(self.durations, self.overlap, self.length)
        scenes = [
            (start, max(0.1, end - start), text)
            for (start, end), text in zip(spans, self.captions, strict=True)
        ]
        return narration_track(scenes, self.work / "narration.wav", self.tts, total=self.length)

    def ours(self) -> Path:
        options = finishing_options(self.settings, self.tts)
        activities = AssemblyActivities(self.storage, self.work / "assembly", options=options)
        request = StitchInput(
            generation_id="b5b",
            platform=PLATFORM,
            clips=self.assembly_clips,
            captions=True,
            narration=True,
            transition=TRANSITION,
            transition_seconds=OVERLAP,
        )
        result = ActivityEnvironment().run(activities.stitch_video, request)
        self.step_seconds = result.step_seconds
        self.overlay_mode = result.overlay_mode
        return self.storage.path(result.key)

    def single_pass(self) -> Path:
        """The one command a person would write for the same video."""
        out = self.work / "single-pass.mp4"
        font = ffmpeg.filter_path(ffmpeg.default_font())
        inputs, parts = [], []
        for index, (clip, caption) in enumerate(zip(self.clips, self.captions, strict=True)):
            lines, size = wrap_caption(caption, SPEC)
            x, y, w, h = caption_box(SPEC, len(lines), size)
            text = self.work / f"caption-{index}.txt"
            text.write_text("\n".join(lines), encoding="utf-8")
            inputs += ["-i", str(clip)]
            parts.append(
                f"[{index}:v]drawbox=x={x}:y={y}:w={w}:h={h}:color=black@0.55:t=fill,"
                f"drawtext=fontfile={font}:textfile={ffmpeg.filter_path(text)}:expansion=none"
                f":text_align=C:fontsize={size}:fontcolor=white:borderw=2"
                f":bordercolor=black@0.6:line_spacing={round(size * (LINE_HEIGHT_EM - 1.17))}"
                f":x=(w-text_w)/2:y={y}+({h}-text_h)/2[c{index}]"
            )
        joined, clock = "c0", self.durations[0]
        for index in range(1, len(self.clips)):
            label = "v" if index == len(self.clips) - 1 else f"x{index}"
            parts.append(
                f"[{joined}][c{index}]xfade=transition={TRANSITION}:duration={self.overlap:.3f}"
                f":offset={clock - self.overlap:.3f}[{label}]"
            )
            joined, clock = label, clock + self.durations[index] - self.overlap
        subprocess.run(
            [ffmpeg.ffmpeg_exe(), "-y", "-hide_banner", "-loglevel", "error", *inputs,
             "-i", str(self.narration), "-filter_complex", ";".join(parts),
             "-map", "[v]", "-map", f"{len(self.clips)}:a",
             "-c:v", "libx264", "-preset", self.settings.ffmpeg_preset, "-crf", str(CRF),
             "-pix_fmt", "yuv420p",
             "-r", str(SPEC.fps), "-c:a", "aac", "-b:a", "192k", "-t", f"{self.length:.3f}",
             "-movflags", "+faststart", str(out)],
            check=True,
        )  # fmt: skip
        return out

    def moviepy(self) -> Path:
        """MoviePy 2 as its documentation composes the same video (FFmpeg from imageio-ffmpeg)."""
        from moviepy import (
            AudioFileClip,
            ColorClip,
            CompositeVideoClip,
            TextClip,
            VideoFileClip,
            vfx,
        )

        out = self.work / "moviepy.mp4"
        font = str(ffmpeg.default_font())
        layers = []
        sources = []
        for index, (clip, caption, start) in enumerate(
            zip(self.clips, self.captions, scene_starts(self.durations, self.overlap), strict=True)
        ):
            lines, size = wrap_caption(caption, SPEC)
            x, y, w, h = caption_box(SPEC, len(lines), size)
            video = VideoFileClip(str(clip), audio=False)
            sources.append(video)
            band = ColorClip((w, h), color=(0, 0, 0), duration=video.duration)
            band = band.with_opacity(0.55).with_position((x, y))
            text = TextClip(
                font=font, text="\n".join(lines), font_size=size, color="white",
                stroke_color="black", stroke_width=2, method="label", text_align="center",
                margin=(4, size // 3), interline=round(size * (LINE_HEIGHT_EM - 1.17)),
                duration=video.duration,
            )  # fmt: skip
            text = text.with_position(("center", y + (h - text.h) // 2))
            scene = CompositeVideoClip([video, band, text], size=(SPEC.width, SPEC.height))
            if index:
                scene = scene.with_effects([vfx.CrossFadeIn(self.overlap)])
            layers.append(scene.with_start(start))
        final = CompositeVideoClip(layers, size=(SPEC.width, SPEC.height))
        final = final.with_duration(self.length)
        final = final.with_audio(AudioFileClip(str(self.narration)).with_duration(self.length))
        final.write_videofile(
            str(out), fps=SPEC.fps, codec="libx264", preset=self.settings.ffmpeg_preset,
            audio_codec="aac", audio_bitrate="192k", pixel_format="yuv420p",
            ffmpeg_params=["-crf", str(CRF), "-movflags", "+faststart"],
            temp_audiofile_path=str(self.work), logger=None,
        )  # fmt: skip
        final.close()
        for video in sources:
            video.close()
        return out


def frame(video: Path, at: float, dst: Path) -> Path:
    """One frame of ``video`` as a PNG, to look at."""
    ffmpeg.run(["-ss", f"{at:.3f}", "-i", str(video), "-frames:v", "1", "-update", "1", str(dst)])
    return dst


def describe(video: Path) -> Results:
    info = details(video)
    return {
        "duration": round(info.duration, 3),
        "width": info.width,
        "height": info.height,
        "fps": info.fps,
        "video_codec": info.video_codec,
        "profile": info.video_profile,
        "pix_fmt": info.pix_fmt,
        "audio_codec": info.audio_codec,
        "size_bytes": info.size_bytes,
    }


def measure(
    work: Path,
    clips: int = 5,
    seconds: float = 6.0,
    rounds: int = 3,
    frames: Path | None = None,
    with_moviepy: bool = True,
) -> Results:
    """B5b's figures: each side's seconds (median for ours and the single pass), both ratios."""
    work.mkdir(parents=True, exist_ok=True)
    sys.stderr.write(f"  B5b: rendering {clips} x {seconds:g} s clips (untimed)…\n")
    finish = Finish(work, make_clips(work / "clips", clips, seconds))
    sides: dict[str, Callable[[], Path]] = {"ours": finish.ours, "single_pass": finish.single_pass}
    walls: dict[str, list[float]] = {name: [] for name in sides}
    cpus: dict[str, list[float]] = {name: [] for name in sides}
    outputs: dict[str, Path] = {}
    for round_ in range(max(1, rounds)):
        order = list(sides) if round_ % 2 == 0 else list(reversed(sides))
        for name in order:
            wall, cpu, outputs[name] = timed(sides[name])
            walls[name].append(wall)
            cpus[name].append(cpu)
            sys.stderr.write(f"  B5b {name}: {wall:.1f} s (cpu {cpu:.1f} s)\n")
    figures: Results = {name: statistics.median(walls[name]) for name in sides} | {
        f"{name}_cpu": statistics.median(cpus[name]) for name in sides
    }
    if with_moviepy:
        wall, cpu, outputs["moviepy"] = timed(finish.moviepy)
        sys.stderr.write(f"  B5b moviepy: {wall:.1f} s (cpu {cpu:.1f} s)\n")
        figures |= {"moviepy": wall, "moviepy_cpu": cpu}
    # Mid-frame of the middle scene, clear of any crossfade.
    overlap = finish.overlap
    starts = scene_starts(finish.durations, overlap)
    middle = len(starts) // 2
    at = starts[middle] + (overlap if middle else 0) + (finish.durations[middle] - overlap) / 2
    frames_dir = frames or work / "frames"
    frames_dir.mkdir(parents=True, exist_ok=True)
    result: Results = {
        **figures,
        "ratio": figures["ours"] / figures["single_pass"],
        "ratio_cpu": figures["ours_cpu"] / figures["single_pass_cpu"],
        "ours_runs": walls["ours"],
        "single_pass_runs": walls["single_pass"],
        "ours_steps": finish.step_seconds,
        "overlay_mode": finish.overlay_mode,
        "clips": clips,
        "seconds_per_clip": seconds,
        "cores": os.cpu_count(),
        "frame_at": round(at, 3),
        "outputs": {name: describe(path) for name, path in outputs.items()},
        "frames": {
            name: str(frame(path, at, frames_dir / f"b5b-{name}.png"))
            for name, path in outputs.items()
        },
    }
    if with_moviepy:
        result["moviepy_ratio"] = figures["moviepy"] / figures["ours"]
        result["moviepy_ratio_cpu"] = figures["moviepy_cpu"] / figures["ours_cpu"]
    return result
