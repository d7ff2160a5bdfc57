"""A scene made of the caller's own material instead of a generated clip: their uploaded video,
cut (or held) to the scene like any provider's clip, or their image, shown with a gentle pan.
It runs on the media queue (FFmpeg work), costs nothing and is stored where the stitch finds
every clip, so captions, narration and transitions treat it like any other scene."""

from __future__ import annotations

import asyncio
import tempfile
import threading
import time
from pathlib import Path

from temporalio import activity

from activities.media import ffmpeg
from activities.media.conform import conform_clip
from activities.media.export import details as probe_details
from activities.media.pan import pan_still
from activities.media.stitch import clip_media
from storyreel.assets import AssetKind, inspect
from storyreel.contracts import PLATFORMS, ClipResult, OwnClipInput, PlatformSpec
from storyreel.errors import MediaError
from storyreel.keys import clip_key
from storyreel.settings import DEFAULT_PRESET, Preset
from storyreel.storage import Storage

# The picture is this much larger than the frame and pans across the difference.
PAN_HEADROOM = 1.12
# An own clip is never long: the limit only guards against a picture FFmpeg cannot decode.
LONGEST_SOURCE_SECONDS = 24 * 3600.0


def animate_still(
    image: Path,
    dst: Path,
    seconds: float,
    spec: PlatformSpec,
    exe: str | None = None,
    stop: threading.Event | None = None,
    preset: Preset = DEFAULT_PRESET,
) -> None:
    """``image`` as a clip of ``seconds`` at the platform's size: it covers a frame
    ``PAN_HEADROOM`` times larger (centred), across which the frame pans left to right."""
    frames = max(1, round(seconds * spec.fps))
    width = 2 * round(spec.width * PAN_HEADROOM / 2)
    height = 2 * round(spec.height * PAN_HEADROOM / 2)
    pan_still(
        ["-i", str(image)],
        dst,
        frames,
        spec,
        size=f"scale={width}:{height}:force_original_aspect_ratio=increase,crop={width}:{height},",
        diagonal=False,
        preset=preset,
        on_progress=ffmpeg.stopping(stop, MediaError, "still animation"),
        exe=exe,
    )


class OwnMaterialActivities:
    """Scenes of the caller's own uploads (``use_asset``), on the media queue."""

    def __init__(
        self,
        storage: Storage,
        work_root: Path,
        ffmpeg_exe: str | None = None,
        preset: Preset = DEFAULT_PRESET,
    ) -> None:
        self.storage = storage
        self.preset: Preset = preset
        self.work_root = work_root
        self.ffmpeg_exe = ffmpeg_exe

    @activity.defn
    async def use_asset(self, request: OwnClipInput) -> ClipResult:
        """The scene's clip from the asset at ``request.asset``; stored at the clip's key."""
        started = time.monotonic()
        key = clip_key(request.generation_id, request.clip_id)
        spec = PLATFORMS[request.platform]
        self.work_root.mkdir(parents=True, exist_ok=True)
        warnings: list[str] = []
        with tempfile.TemporaryDirectory(dir=self.work_root, prefix="own-") as folder:
            work = Path(folder)
            source = work / "asset"
            await asyncio.to_thread(self.storage.get_file, request.asset, source)
            found = await asyncio.to_thread(
                inspect, source, LONGEST_SOURCE_SECONDS, self.ffmpeg_exe
            )
            scene = work / "scene.mp4"
            stop = threading.Event()
            try:
                if found.kind is AssetKind.image:
                    await asyncio.to_thread(
                        animate_still,
                        source,
                        scene,
                        request.duration,
                        spec,
                        self.ffmpeg_exe,
                        stop,
                        self.preset,
                    )
                else:
                    report = await asyncio.to_thread(
                        conform_clip,
                        source,
                        scene,
                        request.duration,
                        spec,
                        exe=self.ffmpeg_exe,
                        preset=self.preset,
                        audio=request.clip_audio,
                        stop=stop,
                    )
                    scene = report.path
                    if (held := report.warning(f"clip {request.clip_id}")) is not None:
                        warnings.append(held + " (your own video is shorter than its scene)")
            except asyncio.CancelledError:
                stop.set()
                raise
            info = await asyncio.to_thread(probe_details, scene, self.ffmpeg_exe)
            await asyncio.to_thread(self.storage.put_file, key, scene)
        return ClipResult(
            clip_id=request.clip_id,
            key=key,
            duration=info.duration,
            render_seconds=round(time.monotonic() - started, 3),
            attempt=activity.info().attempt,
            cost=0.0,
            media=clip_media(info),
            billed_seconds=0.0,
            warnings=warnings,
        )
