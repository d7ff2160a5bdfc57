"""The real VeoClient and adapter against the simulator's Gemini API (Veo) protocol over HTTP:
the documented body arrives, a length the model makes is asked, and the keyed download is a
playable video of that length; bodies the API refuses are refused in Google's error shape."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx
import pytest

from activities.media.export import details
from activities.providers.base import ClipJob
from activities.providers.veo import VeoClipProvider, default_clip_body
from activities.providers.veo_api import VeoClient
from storyreel.catalogue import Durations, ModelSpec
from storyreel.contracts import PLATFORMS, Platform, PredictionPhase
from storyreel.errors import ProviderRejectedError
from tests.activities.test_runware_protocol import png, simulator
from tests.activities.test_simulator_fal import until

KEY = "AIza-simulated-key"
MODEL = "veo-3.1-generate-preview"
# As ai.google.dev/gemini-api/docs/video documents Veo 3.1 ("Veo model parameters").
SPEC = ModelSpec(
    provider="veo",
    model=MODEL,
    prompt_field="prompt",
    first_frame_field="image",
    durations=Durations(field="durationSeconds", values=[4, 6, 8]),
    aspect_ratio_field="aspectRatio",
    aspect_ratios=["16:9", "9:16"],
    resolution_field="resolution",
    resolutions=["1080p", "720p"],
    audio=True,
)


def clip_job(tmp_path: Path, **changes: Any) -> ClipJob:
    fields: dict[str, Any] = {
        "generation_id": "gen-veo",
        "clip_id": 2,
        "prompt": "A lighthouse at dusk",
        "text": "waves",
        "duration": 4.0,
        "platform": PLATFORMS[Platform.tiktok],
        "model": MODEL,
        "seed": 7,
        "image": None,
        "workdir": tmp_path,
        "spec": SPEC,
    }
    return ClipJob(**(fields | changes))


def client(url: str, key: str | None = KEY) -> VeoClient:
    return VeoClient(key, f"{url}/veo", poll_interval=0.05, max_retries=1)


async def start(url: str, body: Any, model: str = MODEL, key: str | None = KEY) -> httpx.Response:
    headers = {"x-goog-api-key": key} if key else {}
    async with httpx.AsyncClient() as http:
        target = f"{url}/veo/v1beta/models/{model}:predictLongRunning"
        return await http.post(target, json=body, headers=headers)


async def test_a_4s_scene_on_veo_3_is_asked_as_4_with_the_storyboard_as_base64(
    tmp_path: Path,
) -> None:
    image = png(tmp_path / "board.png", 18, 32)
    job = clip_job(tmp_path, image=image)
    async with simulator() as url, client(url) as veo:
        provider = VeoClipProvider(veo)
        name = await provider.submit(job)
        assert name.startswith(f"models/{MODEL}/operations/")
        output = await provider.wait(name, job, lambda _s, _p: None)
        async with httpx.AsyncClient() as http:
            (record,) = (await http.get(f"{url}/veo/_sim/log")).json()["operations"]
            (logged,) = (await http.get(f"{url}/_sim/log")).json()["predictions"]
            unkeyed = await http.get(f"{url}/veo/v1beta/files/{name.rsplit('/', 1)[-1]}:download")
    assert record["operation"] == name and record["status"] == "succeeded"
    assert logged["protocol"] == "veo" and logged["inputs"]["request"] == {
        key: value
        for key, value in record.items()
        if key not in ("id", "protocol", "operation", "status")
    }
    assert record["parameters"] == {
        "aspectRatio": "9:16",
        "durationSeconds": 4,
        "resolution": "720p",  # 1080p makes 8 s clips only
    }
    assert record["first_frame"] == "instances[0].image.bytesBase64Encoded"
    assert record["first_frame_mime"] == "image/png"
    assert record["first_frame_bytes"] == image.stat().st_size
    assert unkeyed.status_code == 403  # the file, like every call, needs the key
    made = details(output.path)
    assert made.duration == pytest.approx(4.0, abs=0.25)
    assert made.height is not None and made.width is not None
    assert made.height > made.width  # 9:16 as asked


def body(**parameters: Any) -> dict[str, Any]:
    return {
        "instances": [{"prompt": "a lighthouse"}],
        "parameters": {"aspectRatio": "16:9", "durationSeconds": 4} | parameters,
    }


@pytest.mark.parametrize(
    ("request_body", "words"),
    [
        (body(durationSeconds=5), "`durationSeconds` 5 isn't supported"),
        (body(generateAudio=True), "`generateAudio` isn't supported by this model."),
        (body(resolution="1080p"), "needs `durationSeconds` 8"),
        (body(aspectRatio="1:1"), "`aspectRatio` '1:1' isn't supported"),
        (body() | {"config": {}}, 'Unknown name "config"'),
        (
            {
                "instances": [
                    {
                        "prompt": "a lighthouse",
                        "image": {"inlineData": {"mimeType": "image/png", "data": "aGk="}},
                    }
                ]
            },
            "`inlineData` isn't supported by this model.",
        ),
        ({"instances": [{"prompt": "x", "image": {"bytesBase64Encoded": "aGk="}}]}, "mimeType"),
        ({"instances": []}, "exactly one instance"),
    ],
)
async def test_a_body_the_api_refuses_is_a_400_in_googles_shape(
    request_body: dict[str, Any], words: str
) -> None:
    async with simulator(render=False) as url:
        answer = await start(url, request_body)
        async with httpx.AsyncClient() as http:
            created = (await http.get(f"{url}/_sim/log")).json()["counts"]["creates"]
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert (error["code"], error["status"]) == (400, "INVALID_ARGUMENT")
    assert words in error["message"]
    assert created == 0


async def test_veo_2_takes_5_and_an_unknown_model_is_a_404() -> None:
    async with simulator(render=False) as url:
        assert (
            await start(url, body(durationSeconds=5), "veo-2.0-generate-001")
        ).status_code == 200
        missing = await start(url, body(), "gemini-9-video")
    assert missing.status_code == 404 and missing.json()["error"]["status"] == "NOT_FOUND"


async def test_a_missing_or_bad_key_is_refused_as_google_refuses_it(tmp_path: Path) -> None:
    async with simulator(render=False) as url:
        missing = await start(url, body(), key=None)
        assert missing.status_code == 403
        assert missing.json()["error"]["status"] == "PERMISSION_DENIED"
        async with client(url, "invalid-key") as veo:
            with pytest.raises(ProviderRejectedError) as rejected:
                await VeoClipProvider(veo).submit(clip_job(tmp_path))
    assert rejected.value.status_code == 400
    assert "API key not valid" in str(rejected.value)


async def test_cancel_stops_the_operation_and_a_refusal_is_rai_filtered(tmp_path: Path) -> None:
    async with simulator(render=False) as url, client(url) as veo:
        provider = VeoClipProvider(veo)
        hung = await provider.submit(clip_job(tmp_path, prompt="waits forever [hang]"))
        refused = await provider.submit(clip_job(tmp_path, prompt="not this [refuse]"))
        await provider.cancel(hung, MODEL)

        async def ended() -> bool:
            updates = [await provider.check(name, MODEL) for name in (hung, refused)]
            return all(u.phase is not PredictionPhase.running for u in updates)

        await until(ended, timeout=60)
        stopped, filtered = [await provider.check(name, MODEL) for name in (hung, refused)]
        operation = await veo.get(refused)
    assert stopped.phase is PredictionPhase.failed and "cancelled" in (stopped.error or "")
    assert filtered.phase is PredictionPhase.refused
    assert operation.filtered is not None


def test_the_body_sent_without_a_spec_is_the_veo_3_default(tmp_path: Path) -> None:
    image = png(tmp_path / "b.png", 18, 32)
    sent = default_clip_body(clip_job(tmp_path, spec=None, image=image, duration=5.0))
    assert sent["parameters"] == {"aspectRatio": "9:16", "durationSeconds": 6}
    encoded = sent["instances"][0]["image"]["bytesBase64Encoded"]
    assert base64.b64decode(encoded) == image.read_bytes()
