"""Providers that cost nothing, for measuring orchestration alone (B2, B3)."""

from __future__ import annotations

import shutil
from pathlib import Path

from activities.media import ffmpeg
from activities.providers.base import ClipJob, ClipOutput, ImageJob, Report
from storyreel.contracts import ClipStatus, PlatformSpec


def prepare(workdir: Path, platform: PlatformSpec, seconds: int = 1) -> tuple[Path, Path]:
    """One tiny clip in the platform's exact format (so stitching stream-copies) and a PNG."""
    size = f"{platform.width}x{platform.height}"
    clip, image = workdir / "noop.mp4", workdir / "noop.png"
    ffmpeg.run(["-f", "lavfi", "-i", f"color=c=navy:s={size}:r={platform.fps}:d={seconds}",
                "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                "-video_track_timescale", str(platform.fps * 512), str(clip)])  # fmt: skip
    ffmpeg.run(["-f", "lavfi", "-i", "color=c=navy:s=64x64", "-frames:v", "1", str(image)])
    return clip, image


class NoopClips:
    def __init__(self, clip: Path) -> None:
        self.clip = clip

    async def submit(self, job: ClipJob) -> str:
        return f"noop-{job.generation_id}-{job.clip_id}"

    async def wait(self, prediction_id: str, job: ClipJob, report: Report) -> ClipOutput:
        report(ClipStatus.rendering, 100.0)
        target = job.workdir / f"{prediction_id}.mp4"
        shutil.copyfile(self.clip, target)
        return ClipOutput(path=target)

    async def cancel(self, prediction_id: str) -> None:  # noqa: ARG002 - nothing to stop
        return None


class NoopImages:
    def __init__(self, image: Path) -> None:
        self.image = image

    async def render(self, job: ImageJob) -> Path:
        target = job.workdir / f"noop-{job.index}.png"
        shutil.copyfile(self.image, target)
        return target
