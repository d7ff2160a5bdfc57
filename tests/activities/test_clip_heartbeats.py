"""A local render heartbeats its progress from the render thread (regression).

Progress is produced on an executor thread; the heartbeat must still run in the activity's
context, or every render longer than the heartbeat timeout would be killed as "silent".
"""

from __future__ import annotations

from pathlib import Path

from temporalio.testing import ActivityEnvironment

from activities.clips import ClipActivities
from activities.providers import LocalClipProvider
from storyreel.contracts import ClipInput, ClipProgress, ClipStatus, PlannedScene, Platform
from storyreel.storage import LocalStorage


async def test_local_render_heartbeats_progress_as_it_goes(tmp_path: Path) -> None:
    beats: list[ClipProgress] = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: beats.append(ClipProgress.model_validate(details[0]))
    activities = ClipActivities(
        LocalStorage(tmp_path / "media"), {"local": LocalClipProvider()}, tmp_path / "tmp"
    )
    scene = PlannedScene(index=1, description="A gull on the pier", duration=3.0, start=0.0)
    request = ClipInput(
        generation_id="g", clip_id=1, clip_count=1, prompt="p", scene=scene,
        platform=Platform.tiktok, provider="local", model="local", use_cache=False,
    )  # fmt: skip
    result = await env.run(activities.generate_clip, request)

    assert result.duration > 2.9
    rendering = [b.progress for b in beats if b.status is ClipStatus.rendering]
    assert any(0 < progress < 100 for progress in rendering), beats
    assert rendering == sorted(rendering)
    assert all(b.prediction_id for b in beats)
