"""Finishing a run without its failed clips, over HTTP: the real stack, a provider that refuses."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client

from activities.providers import ClipProvider, LocalClipProvider
from activities.providers.base import ClipJob, Report
from storyreel.errors import ProviderRefusedError
from storyreel.settings import Settings
from tests.api.conftest import LiveApi, live_stack
from tests.api.test_generations import body, poll_until
from tests.conftest import CLIP_SECONDS, clean_env
from tests.fakes import SleepyProvider


class RefusingProvider(SleepyProvider):
    """Refuses the clips in ``refused`` on content-policy grounds (not retried)."""

    def __init__(self, clip: Path, seconds: float, refused: set[int]) -> None:
        super().__init__(clip, seconds)
        self.refused = refused

    async def work(self, prediction_id: str, job: ClipJob, report: Report) -> None:
        await super().work(prediction_id, job, report)
        if job.clip_id in self.refused:
            raise ProviderRefusedError(f"content policy: clip {job.clip_id} was refused")


async def cli(api: LiveApi, *args: str) -> tuple[int, str]:
    """``storyreel ARGS`` against this API (a subprocess: the server runs on this loop)."""
    env = clean_env()
    env.update(STORYREEL_API_URL=api.url, STORYREEL_API_KEY=api.key, COLUMNS="200")
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "storyreel"),
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    return await process.wait(), output.decode()


@pytest.fixture
async def refusing_api(
    client: Client, settings: Settings, prepared_clip: Path
) -> AsyncIterator[LiveApi]:
    settings = settings.model_copy(
        update={"clip_providers": [*settings.clip_providers, "refusing"]}
    )
    providers: dict[str, ClipProvider] = {
        "local": LocalClipProvider(),
        "refusing": RefusingProvider(prepared_clip, 0.3, refused={2}),
    }
    async with live_stack(client, settings, providers, "alice") as api:
        yield api


async def test_finish_assembles_the_clips_that_succeeded(refusing_api: LiveApi) -> None:
    api = refusing_api
    request = body("refusing", 3, transition="none", captions=False)
    gid = (await api.http.post("/v1/generations", json=request)).json()["id"]
    waiting = await poll_until(api, gid, {"awaiting_retry", "failed"}, [])
    assert waiting["status"] == "awaiting_retry"
    assert [clip["status"] for clip in waiting["clips"]] == ["complete", "failed", "complete"]
    assert waiting["clips"][1]["attempts"] == 1, "a refusal is not retried"
    assert "content policy" in waiting["clips"][1]["error"]

    async with api.new_user("mallory") as mallory:
        stolen = await mallory.post(f"/v1/generations/{gid}/finish")
        assert stolen.status_code == 404 and "no generation" in stolen.json()["detail"]
    unknown = await api.http.post("/v1/generations/gen-doesnotexist/finish")
    assert unknown.status_code == 404

    answer = await api.http.post(f"/v1/generations/{gid}/finish")
    assert answer.status_code == 202, answer.text
    assert answer.json() == {"id": gid, "action": "finish_without_failed", "clip_id": None}

    final = await poll_until(api, gid, {"completed", "failed"}, [])
    assert final["status"] == "completed", final["error"]
    assert final["skipped_clips"] == [2]
    # Clips 1 and 3, hard cuts: two clips' worth of video.
    assert final["duration"] == pytest.approx(2 * CLIP_SECONDS, abs=0.15)
    video = await api.http.get(final["video_url"])
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"

    again = await api.http.post(f"/v1/generations/{gid}/finish")
    assert again.status_code == 409
    assert again.json()["detail"].startswith(f"generation {gid} is completed, not awaiting_retry")

    # 'storyreel finish ID' goes through the same route.
    code, output = await cli(api, "finish", gid)
    assert code == 1 and "409" in output and "not awaiting_retry" in output
    code, output = await cli(api, "finish", "gen-doesnotexist")
    assert code == 1 and "404" in output


async def test_finish_refuses_a_run_that_is_not_waiting(live_api: LiveApi) -> None:
    gid = (await live_api.http.post("/v1/generations", json=body("sleepy", 1))).json()["id"]
    early = await live_api.http.post(f"/v1/generations/{gid}/finish")
    assert early.status_code == 409 and "not awaiting_retry" in early.json()["detail"]
    await poll_until(live_api, gid, {"completed"}, [])
