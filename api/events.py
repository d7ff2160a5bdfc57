"""Live events: the difference between two states, as the messages of SPEC §3."""

from __future__ import annotations

from typing import Any

from api.views import GenerationView
from storyreel.contracts import CLIP_DONE, ClipStatus, GenerationStatus

Event = dict[str, Any]
PROGRESS_EVERY = 1.0  # seconds: a rendering clip is re-announced at least this often


class EventStream:
    """Turns successive views of one generation into events; remembers what it has said."""

    def __init__(self) -> None:
        self.previous: GenerationView | None = None
        self.progress_sent: dict[int, float] = {}

    def events(self, view: GenerationView, now: float) -> list[Event]:
        before = self.previous
        out: list[Event] = []
        if before is None or (before.status, before.stage) != (view.status, view.stage):
            out.append(
                {
                    "type": "generation_status",
                    "status": view.status.value,
                    "stage": view.stage.value if view.stage else None,
                }
            )
        old = {clip.clip_id: clip for clip in before.clips} if before else {}
        for clip in view.clips:
            was = old.get(clip.clip_id)
            changed = was is None or (was.status, was.progress) != (clip.status, clip.progress)
            stale = now - self.progress_sent.get(clip.clip_id, float("-inf")) >= PROGRESS_EVERY
            active = clip.status in (ClipStatus.processing, ClipStatus.rendering)
            finished_now = clip.status in CLIP_DONE and (was is None or was.status not in CLIP_DONE)
            if changed and (active or finished_now) or (active and stale):
                out.append(
                    {
                        "type": "video_progress",
                        "clip_id": clip.clip_id,
                        "progress": 100.0 if finished_now else clip.progress,
                        "status": clip.status.value,
                    }
                )
                self.progress_sent[clip.clip_id] = now
            if finished_now:
                out.append(
                    {
                        "type": "video_complete",
                        "clip_id": clip.clip_id,
                        "url": clip.url,
                        "duration": clip.duration,
                    }
                )
            if clip.status is ClipStatus.failed and (was is None or was.status != clip.status):
                out.append(
                    {
                        "type": "clip_failed",
                        "clip_id": clip.clip_id,
                        "error": clip.error,
                        "attempts": clip.attempts,
                    }
                )
        # A run's end is announced once, when its status first becomes it.
        status_changed = before is None or before.status is not view.status
        if status_changed and view.status is GenerationStatus.completed:
            out.append(
                {
                    "type": "generation_complete",
                    "video_url": view.video_url,
                    "thumbnail_url": view.thumbnail_url,
                    "duration": view.duration,
                }
            )
        if status_changed and view.status is GenerationStatus.failed:
            out.append({"type": "generation_failed", "error": view.error})
        self.previous = view
        return out
