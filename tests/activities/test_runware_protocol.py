"""The real RunwareClient and adapter against the simulator's Runware protocol over HTTP:
the documented task shape arrives, the asked length is one the model makes, and the clip that
comes back is a playable video of that length."""

from __future__ import annotations

import struct
import uuid
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from activities.media.export import details
from activities.providers.base import ClipJob
from activities.providers.runware import RunwareClipProvider, task_uuid
from activities.providers.runware_api import RunwareClient
from activities.simulator import SimulatorConfig, create_app
from storyreel.catalogue import Durations, ModelSpec
from storyreel.contracts import PLATFORMS, ClipStatus, Platform
from storyreel.errors import ProviderRejectedError
from tests.activities.test_simulator_fal import serving, until

KEY = "rw_simulated_key"
KLING = "klingai:5@3"
VEO = "google:3@3"
# As runware.ai/docs/models/google-veo-3-1-fast documents Veo 3.1 Fast.
VEO_SPEC = ModelSpec(
    provider="runware",
    model=VEO,
    prompt_field="positivePrompt",
    first_frame_field="inputs.frameImages",
    durations=Durations(field="duration", values=[4, 6, 8]),
    aspect_ratio_field=None,
    sizes=["1280x720", "720x1280", "1920x1080", "1080x1920", "3840x2160", "2160x3840"],
    seed_field="seed",
    audio=True,
    audio_field="providerSettings.google.generateAudio",
)


@asynccontextmanager
async def simulator(**knobs: Any) -> AsyncIterator[str]:
    """The simulator on a free 127.0.0.1 port in this event loop, always stopped."""
    app = create_app(SimulatorConfig(**{"latency": 0.3, "seed": 1} | knobs))
    async with serving(app) as url:
        yield url


def png(path: Path, width: int = 32, height: int = 18) -> Path:
    """A small valid PNG (grey), so the storyboard's bytes and size can be checked."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\0" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + data)
    return path


def clip_job(tmp_path: Path, **changes: Any) -> ClipJob:
    fields: dict[str, Any] = {
        "generation_id": "gen-rw",
        "clip_id": 1,
        "prompt": "A lighthouse at dusk",
        "text": "waves",
        "duration": 4.0,
        "platform": PLATFORMS[Platform.youtube],
        "model": KLING,
        "seed": 7,
        "image": None,
        "workdir": tmp_path,
    }
    return ClipJob(**(fields | changes))


def client(url: str, key: str | None = KEY) -> RunwareClient:
    return RunwareClient(key, f"{url}/runware/v1", poll_interval=0.05, max_retries=1)


async def record_of(url: str, uuid_: str) -> dict[str, Any]:
    """What the task carried, as the protocol's log and the engine's ``/_sim/log`` show it."""
    async with httpx.AsyncClient() as http:
        tasks = (await http.get(f"{url}/runware/_sim/log")).json()["tasks"]
        engine = (await http.get(f"{url}/_sim/log")).json()["predictions"]
    (record,) = [task for task in tasks if task["taskUUID"] == uuid_]
    (logged,) = [entry for entry in engine if entry["id"] == record["id"]]
    assert logged["protocol"] == "runware"
    assert logged["inputs"]["request"]["first_frame"] == record["first_frame"]
    assert logged["inputs"]["request"]["duration"] == record["duration"]
    return dict(record)


async def post(url: str, tasks: list[dict[str, Any]], key: str | None = KEY) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with httpx.AsyncClient() as http:
        return await http.post(f"{url}/runware/v1", json=tasks, headers=headers)


async def test_a_kling_clip_for_a_4s_scene_is_asked_as_5_with_the_storyboard_in_inputs(
    tmp_path: Path,
) -> None:
    image = png(tmp_path / "board.png")
    job = clip_job(tmp_path, image=image)  # no spec: Kling's lengths from the family table
    reports: list[tuple[ClipStatus, float]] = []
    async with simulator() as url, client(url) as runware:
        provider = RunwareClipProvider(runware)
        prediction_id = await provider.submit(job)
        assert prediction_id == task_uuid(job)
        output = await provider.wait(prediction_id, job, lambda s, p: reports.append((s, p)))
        record = await record_of(url, prediction_id)
    assert record["duration"] == 5
    assert record["first_frame"] == "inputs.frameImages[0].image"
    assert record["first_frame_mime"] == "image/png"
    assert record["first_frame_bytes"] == image.stat().st_size
    assert record["frame"] == "first"
    assert record["width"] is None and "frameImages" not in record["fields"]
    assert reports[-1] == (ClipStatus.rendering, 100.0)
    made = details(output.path)
    assert made.duration == pytest.approx(5.0, abs=0.25)


async def test_a_veo_clip_on_runware_is_asked_as_4_at_a_listed_size_with_the_sound_switch(
    tmp_path: Path,
) -> None:
    job = clip_job(tmp_path, model=VEO, spec=VEO_SPEC, audio=False)
    async with simulator() as url, client(url) as runware:
        provider = RunwareClipProvider(runware)
        prediction_id = await provider.submit(job)
        output = await provider.wait(prediction_id, job, lambda _s, _p: None)
        record = await record_of(url, prediction_id)
    assert record["duration"] == 4
    assert (record["width"], record["height"]) == (1920, 1080)
    assert record["providerSettings"] == {"google": {"generateAudio": False}}
    assert record["seed"] == 7 and record["first_frame"] is None
    assert details(output.path).duration == pytest.approx(4.0, abs=0.25)


async def test_get_response_reports_progress_while_processing() -> None:
    task = str(uuid.uuid4())
    video = {
        "taskType": "videoInference",
        "taskUUID": task,
        "model": KLING,
        "positivePrompt": "a slow one",
        "duration": 5,
        "width": 1920,
        "height": 1080,
    }
    async with simulator(latency=3.0, render=False) as url:
        assert (await post(url, [video])).json() == {
            "data": [{"taskType": "videoInference", "taskUUID": task}]
        }

        async def progress() -> float | None:
            answer = await post(url, [{"taskType": "getResponse", "taskUUID": task}])
            (item,) = answer.json()["data"]
            assert item["status"] == "processing"
            value = item.get("progress")
            return value if isinstance(value, int) and 0 < value < 100 else None

        assert await until(progress, timeout=10)
        unknown = await post(url, [{"taskType": "getResponse", "taskUUID": str(uuid.uuid4())}])
        assert unknown.json() == {"data": []}


@pytest.mark.parametrize(
    ("change", "code", "parameter"),
    [
        ({"positivePrompt": None}, "missingParameter", "positivePrompt"),
        ({"duration": 4}, "invalidDuration", "duration"),  # Kling makes 5 or 10
        ({"height": None}, "invalidParameter", "width"),
        ({"inputs": {"frameImages": [{"inputImage": "aGk=", "frame": "first"}]}}, None, None),
        ({"deliveryMethod": "sync"}, "invalidParameter", "deliveryMethod"),
        ({"taskUUID": "not-a-uuid"}, "invalidTaskUUID", "taskUUID"),
    ],
)
async def test_a_task_out_of_the_documented_shape_is_refused_in_the_errors_shape(
    change: dict[str, Any], code: str | None, parameter: str | None
) -> None:
    task: dict[str, Any] = {
        "taskType": "videoInference",
        "taskUUID": str(uuid.uuid4()),
        "deliveryMethod": "async",
        "model": KLING,
        "positivePrompt": "a lighthouse",
        "duration": 5,
        "width": 1920,
        "height": 1080,
    }
    task |= change
    task = {name: value for name, value in task.items() if value is not None}
    if "inputs" in change:  # a frame image without "image", and one with a size as well
        code, parameter = "invalidFrameImage", "inputs.frameImages"
    async with simulator(render=False) as url:
        answer = await post(url, [task])
        async with httpx.AsyncClient() as http:
            created = (await http.get(f"{url}/_sim/log")).json()["counts"]["creates"]
    assert answer.status_code == 400
    (error,) = answer.json()["errors"]
    assert (error["code"], error.get("parameter"), error["taskType"]) == (
        code,
        parameter,
        "videoInference",
    )
    assert created == 0


async def test_a_frame_image_and_a_size_together_are_refused() -> None:
    task = {
        "taskType": "videoInference",
        "taskUUID": str(uuid.uuid4()),
        "model": VEO,
        "positivePrompt": "a lighthouse",
        "duration": 4,
        "width": 1920,
        "height": 1080,
        "inputs": {"frameImages": [{"image": "aGVsbG8=", "frame": "first"}]},
    }
    async with simulator(render=False) as url:
        answer = await post(url, [task])
        (error,) = answer.json()["errors"]
        assert answer.status_code == 400 and "exactly one of" in error["message"]
        no_size = {name: value for name, value in task.items() if name not in ("inputs", "width")}
        no_size.pop("height")
        answer = await post(url, [no_size | {"taskUUID": str(uuid.uuid4())}])
        assert answer.status_code == 400  # Veo needs a frame image, a size or a resolution


@pytest.mark.parametrize("key", [None, "invalid-key"])
async def test_a_missing_or_bad_key_is_refused_as_runware_refuses_it(
    tmp_path: Path, key: str | None
) -> None:
    async with simulator(render=False) as url:
        raw = await post(url, [{"taskType": "getResponse", "taskUUID": str(uuid.uuid4())}], key)
        assert raw.status_code == 401
        assert raw.json()["errors"][0]["code"] == "invalidApiKey"
        async with client(url, key) as runware:
            with pytest.raises(ProviderRejectedError) as rejected:
                await RunwareClipProvider(runware).submit(clip_job(tmp_path))
    assert rejected.value.status_code == 401


async def test_a_refused_prompt_ends_as_a_refusal_and_the_key_task_is_accepted(
    tmp_path: Path,
) -> None:
    job = clip_job(tmp_path, prompt="something [refuse]")
    async with simulator(render=False) as url, client(url) as runware:
        provider = RunwareClipProvider(runware)
        prediction_id = await provider.submit(job)

        async def ended() -> bool:
            return (await provider.check(prediction_id, KLING)).phase.value not in (
                "queued",
                "running",
            )

        await until(ended, timeout=60)
        update = await provider.check(prediction_id, KLING)
        # The documented alternative to the header: an authentication task first.
        auth = {"taskType": "authentication", "apiKey": KEY}
        answer = await post(
            url, [auth, {"taskType": "getResponse", "taskUUID": prediction_id}], None
        )
    assert update.phase.value == "refused"
    assert answer.status_code == 200 and answer.json()["errors"][0]["code"] == "contentModerated"
