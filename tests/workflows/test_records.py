"""The record database follows the run: after a full generation it equals the final state."""

from __future__ import annotations

from pathlib import Path

from temporalio.client import Client

from storyreel.contracts import GenerationStatus
from storyreel.db import open_records
from storyreel.generations import start_generation
from storyreel.settings import Price, Settings
from tests.db.fixtures import spent
from tests.fakes import FlakyProvider
from tests.workflows.conftest import keep_history, request_for, running_worker, wait_for_state


async def test_after_a_full_generation_the_record_equals_the_final_state(
    client: Client, settings: Settings, prepared_clip: Path
) -> None:
    settings.prices["flaky"] = Price(per_second=0.25)
    provider = FlakyProvider(prepared_clip, 0.3, failing={2})
    records = open_records(settings)
    try:
        user = records.create_user("dora")
        assert user.id is not None
        async with running_worker(client, settings, {"flaky": provider}):
            handle = await start_generation(
                client, settings, request_for(3, "flaky"), user_id=user.id, user="dora"
            )
            await wait_for_state(handle, lambda s: s.status is GenerationStatus.awaiting_retry)
            provider.heal()
            await handle.signal("retry_clip", {"clip_id": 2})
            final = await handle.result()
            await keep_history(handle)

        recorded = records.get_generation(handle.id, user.id)
        assert recorded is not None
        assert final.status is GenerationStatus.completed
        fields = {
            "clips", "status", "stage", "video_key", "thumbnail_key", "duration", "cost",
            "timings", "clip_stage", "storyboard_keys", "error", "warnings", "title",
        }  # fmt: skip
        assert recorded.model_dump(include=fields) == final.model_dump(include=fields)
        assert [clip.attempts for clip in recorded.clips] == [1, 4, 1]
        # Each paid clip attempt chain entered the ledger once: 3 clips x 2 s x 0.25.
        assert spent(records, user.id) == 1.5
        page = records.list_generations(user.id)
        assert [item.id for item in page.items] == [handle.id]

        # The records were written as local activities: the run's timeline (the Web UI's) is
        # its plan, storyboards, clips and stitch; the record writes are markers.
        history = await handle.fetch_history()
        scheduled = [
            event.activity_task_scheduled_event_attributes.activity_type.name
            for event in history.events
            if event.HasField("activity_task_scheduled_event_attributes")
        ]
        markers = [
            event for event in history.events if event.HasField("marker_recorded_event_attributes")
        ]
        assert "record_generation" not in scheduled
        assert len(markers) >= 6, "fewer record writes than stages"
        assert set(scheduled) == {
            "plan_generation", "render_storyboard", "generate_clip", "stitch_video",
            "publish_generation",
        }  # fmt: skip
    finally:
        records.dispose()
