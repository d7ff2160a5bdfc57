"""Assembly and publish stages: stitch the clips in scene order, thumbnail, record."""

from __future__ import annotations

import tempfile
from pathlib import Path

from temporalio import activity

from activities.keys import record_key, thumbnail_key, video_key
from activities.media import ffmpeg
from storyreel.contracts import (
    PLATFORMS,
    PublishInput,
    PublishResult,
    StitchInput,
    StitchResult,
)
from storyreel.errors import BadInputError, StoryreelError
from storyreel.storage import Storage


def _concat_list(paths: list[Path], target: Path) -> Path:
    lines = [
        f"file '{path.as_posix().replace(chr(39), chr(39) + chr(92) + chr(39) * 2)}'"
        for path in paths
    ]
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return target


class AssemblyActivities:
    def __init__(self, storage: Storage, work_root: Path, ffmpeg_exe: str | None = None) -> None:
        self.storage = storage
        self.work_root = work_root
        self.ffmpeg_exe = ffmpeg_exe

    @activity.defn(name="stitch_video")
    def stitch_video(self, request: StitchInput) -> StitchResult:
        """Join the clips in scene order; stream copy when they share one format."""
        try:
            return self._stitch(request)
        except StoryreelError as error:
            raise error.to_application_error() from error

    def _stitch(self, request: StitchInput) -> StitchResult:
        if not request.clip_keys:
            raise BadInputError("no clips to stitch")
        spec = PLATFORMS[request.platform]
        self.work_root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.work_root, prefix="stitch-") as work:
            workdir = Path(work)
            clips: list[Path] = []
            for number, key in enumerate(request.clip_keys, start=1):
                local = workdir / f"clip-{number:03d}.mp4"
                self.storage.get_file(key, local)
                clips.append(local)
                activity.heartbeat(f"fetched {number}/{len(request.clip_keys)}")
            infos = [ffmpeg.probe(clip, self.ffmpeg_exe) for clip in clips]
            total = sum(info.duration for info in infos)
            uniform = all(
                (info.video_codec, info.width, info.height, info.fps)
                == ("h264", spec.width, spec.height, float(spec.fps))
                for info in infos
            )
            listing = _concat_list(clips, workdir / "clips.txt")
            output = workdir / "video.mp4"
            concat = ["-f", "concat", "-safe", "0", "-i", str(listing)]
            if uniform:
                codec = ["-c", "copy"]
            else:
                codec = [
                    "-vf",
                    f"scale={spec.width}:{spec.height}:force_original_aspect_ratio=decrease,"
                    f"pad={spec.width}:{spec.height}:(ow-iw)/2:(oh-ih)/2,fps={spec.fps},"
                    "format=yuv420p",
                    "-c:v", "libx264", "-preset", "veryfast",
                ]  # fmt: skip
            ffmpeg.run(
                [*concat, *codec, "-movflags", "+faststart", str(output)],
                duration=total,
                on_progress=lambda fraction: activity.heartbeat(round(fraction * 100, 1)),
                exe=self.ffmpeg_exe,
            )
            info = ffmpeg.probe(output, self.ffmpeg_exe)
            thumbnail = workdir / "thumbnail.jpg"
            ffmpeg.run(
                ["-ss", f"{info.duration / 2:.3f}", "-i", str(output),
                 "-frames:v", "1", "-q:v", "3", str(thumbnail)],
                exe=self.ffmpeg_exe,
            )  # fmt: skip
            key, thumb_key = video_key(request.generation_id), thumbnail_key(request.generation_id)
            self.storage.put_file(key, output)
            self.storage.put_file(thumb_key, thumbnail)
        return StitchResult(
            key=key,
            duration=info.duration,
            width=info.width or spec.width,
            height=info.height or spec.height,
            stream_copy=uniform,
            thumbnail_key=thumb_key,
        )

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
        return PublishResult(record_key=key)
