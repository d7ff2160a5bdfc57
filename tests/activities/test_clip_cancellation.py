"""A clip cancels its upstream prediction only when the workflow cancelled it.

A worker that shuts down (or an attempt that times out) leaves the prediction running: the next
attempt resumes it from the heartbeat. Cancelling it upstream would make that attempt pay for a
second prediction.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from temporalio.activity import ActivityCancellationDetails
from temporalio.testing import ActivityEnvironment

from activities.clips import ClipActivities
from activities.providers.replicate import ReplicateClipProvider
from activities.providers.replicate_api import ReplicateClient
from storyreel.contracts import ClipInput, ClipProgress, PlannedScene, Platform
from storyreel.storage import LocalStorage
from tests.activities.test_simulator import running, until

SHUTDOWN = ActivityCancellationDetails(worker_shutdown=True)
TIMED_OUT = ActivityCancellationDetails(timed_out=True)
REQUESTED = ActivityCancellationDetails(cancel_requested=True)


def clip_request() -> ClipInput:
    scene = PlannedScene(index=1, description="A gull on the pier", duration=3.0, start=0.0)
    return ClipInput(
        generation_id="g", clip_id=1, clip_count=1, prompt="p", scene=scene,
        platform=Platform.tiktok, provider="simulator", model="storyreel/sim-video",
        use_cache=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("details", "cancelled_upstream"),
    [(SHUTDOWN, False), (TIMED_OUT, False), (REQUESTED, True)],
    ids=["worker-shutdown", "timed-out", "workflow-cancel"],
)
async def test_only_a_workflow_cancel_cancels_the_prediction(
    tmp_path: Path, details: ActivityCancellationDetails, cancelled_upstream: bool
) -> None:
    async with (
        running(latency=60) as sim,
        ReplicateClient(sim.url, "test-token", poll_interval=0.05) as client,
    ):
        beats: list[ClipProgress] = []
        env = ActivityEnvironment()
        env.on_heartbeat = lambda *d: beats.append(ClipProgress.model_validate(d[0]))
        clips = ClipActivities(
            LocalStorage(tmp_path / "media"),
            {"simulator": ReplicateClipProvider(client)},
            tmp_path / "tmp",
        )
        run = asyncio.create_task(env.run(clips.generate_clip, clip_request()))

        async def prediction_id() -> str | None:
            assert not run.done(), run
            return next((b.prediction_id for b in beats if b.prediction_id), None)

        predicted: str = await until(prediction_id)
        env.cancel(details)
        with pytest.raises(asyncio.CancelledError):
            await run

        # Still running for the next attempt to resume, or cancelled for good.
        status = (await sim.get(predicted))["status"]
        assert status == "canceled" if cancelled_upstream else status in {"starting", "processing"}
        assert (await sim.log())["counts"]["cancels"] == int(cancelled_upstream)
