"""The Runware adapter against answers shaped like its docs (tests/fixtures/runware)."""

from __future__ import annotations

import base64
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from activities.providers.base import ClipJob
from activities.providers.runware import (
    RunwareClipProvider,
    clip_seconds,
    default_clip_task,
    task_uuid,
)
from activities.providers.runware_api import RunwareClient
from storyreel.catalogue import Durations, ModelSpec
from storyreel.contracts import PLATFORMS, ClipStatus, Platform, PredictionPhase
from storyreel.errors import (
    PredictionFailedError,
    ProviderError,
    ProviderRefusedError,
    ProviderRejectedError,
    ProviderThrottledError,
)

KEY = "rw_TopSecretKeyThatMustNeverBeLogged"
API = "https://api.runware.ai/v1"
FIXTURES = Path(__file__).parents[1] / "fixtures" / "runware"
Handler = Callable[[httpx.Request], httpx.Response]


class FakeSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


class Script:
    """A transport handler answering from a list, one answer (or exception) per request."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if not self.answers:
            raise AssertionError(f"unexpected request {request.method} {request.url}")
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def tasks(self, index: int) -> list[dict[str, Any]]:
        body: list[dict[str, Any]] = json.loads(self.requests[index].content)
        return body


def fixture(name: str, task: str = "") -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text().replace("TASK_UUID", task))


def answer(name: str, task: str = "", status: int = 200, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=fixture(name, task), headers=headers)


def clip_job(tmp_path: Path, **changes: Any) -> ClipJob:
    fields: dict[str, Any] = {
        "generation_id": "g1",
        "clip_id": 2,
        "prompt": "A lighthouse at dusk\n\nSCENE: waves",
        "text": "waves",
        "duration": 2.5,
        "platform": PLATFORMS[Platform.tiktok],
        "model": "klingai:5@3",
        "seed": 7,
        "image": None,
        "workdir": tmp_path,
    }
    return ClipJob(**(fields | changes))


@pytest.fixture
def sleep() -> FakeSleep:
    return FakeSleep()


@pytest.fixture
async def connect(sleep: FakeSleep) -> AsyncIterator[Callable[..., RunwareClient]]:
    clients: list[RunwareClient] = []

    def make(script: Script, **options: Any) -> RunwareClient:
        options = {"sleep": sleep, "jitter": lambda: 1.0, "poll_interval": 3.0, **options}
        client = RunwareClient(KEY, transport=httpx.MockTransport(script), **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


# --------------------------------------------------------------------------------------------
# Submit


async def test_submit_reads_the_uuid_then_sends_the_task(
    connect: Callable[..., RunwareClient], tmp_path: Path
) -> None:
    image = tmp_path / "reference.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    job = clip_job(tmp_path, image=image)
    expected = task_uuid(job)
    script = Script(answer("get_empty"), answer("submit_ack", expected))

    assert await RunwareClipProvider(connect(script)).submit(job) == expected

    assert [(r.method, str(r.url)) for r in script.requests] == [("POST", API)] * 2
    for request in script.requests:
        assert request.headers["Authorization"] == f"Bearer {KEY}"
        assert request.headers["Content-Type"] == "application/json"
    assert script.tasks(0) == [{"taskType": "getResponse", "taskUUID": expected}]
    data_uri = "data:image/png;base64," + base64.b64encode(image.read_bytes()).decode()
    assert script.tasks(1) == [
        {
            "taskType": "videoInference",
            "taskUUID": expected,
            "deliveryMethod": "async",
            "model": "klingai:5@3",
            "positivePrompt": "A lighthouse at dusk\n\nSCENE: waves",
            "duration": 5,  # 2.5 s rounded up to what Kling accepts
            "seed": 7,
            "numberResults": 1,
            "outputType": "URL",
            "outputFormat": "MP4",
            "includeCost": True,
            # runware.ai/docs/en/video-inference/api-reference: inputs.frameImages[].image
            "inputs": {"frameImages": [{"image": data_uri, "frame": "first"}]},
        }
    ]


def test_task_uuid_is_a_stable_v4_uuid_per_job(tmp_path: Path) -> None:
    job = clip_job(tmp_path)
    first = task_uuid(job)
    assert first == task_uuid(clip_job(tmp_path / "elsewhere"))  # the workdir does not count
    assert uuid.UUID(first).version == 4
    others = {
        task_uuid(clip_job(tmp_path, prompt="another prompt")),
        task_uuid(clip_job(tmp_path, seed=8)),
        task_uuid(clip_job(tmp_path, clip_id=3)),
        task_uuid(clip_job(tmp_path, model="minimax:1@1")),
        task_uuid(job, 1),
    }
    assert first not in others and len(others) == 5


async def test_submit_after_a_crash_follows_the_task_already_sent(
    connect: Callable[..., RunwareClient], tmp_path: Path
) -> None:
    job = clip_job(tmp_path)
    script = Script(answer("get_processing", task_uuid(job)))
    assert await RunwareClipProvider(connect(script)).submit(job) == task_uuid(job)
    assert len(script.requests) == 1  # nothing sent, nothing paid twice


async def test_submit_steps_over_a_task_that_failed(
    connect: Callable[..., RunwareClient], tmp_path: Path
) -> None:
    job = clip_job(tmp_path)
    failed, fresh = task_uuid(job, 0), task_uuid(job, 1)
    script = Script(
        answer("get_error", failed, status=400),
        answer("get_empty"),
        answer("submit_ack", fresh),
    )
    assert await RunwareClipProvider(connect(script)).submit(job) == fresh
    assert [t[0]["taskUUID"] for t in map(script.tasks, range(3))] == [failed, fresh, fresh]
    assert script.tasks(2)[0]["taskType"] == "videoInference"


async def test_a_duplicate_uuid_answer_is_followed_not_raised(
    connect: Callable[..., RunwareClient], tmp_path: Path
) -> None:
    job = clip_job(tmp_path)
    script = Script(answer("get_empty"), answer("duplicate_task", task_uuid(job), status=400))
    assert await RunwareClipProvider(connect(script)).submit(job) == task_uuid(job)


def test_default_task_shapes(tmp_path: Path) -> None:
    wide = default_clip_task(clip_job(tmp_path, platform=PLATFORMS[Platform.youtube]))
    assert (wide["width"], wide["height"]) == (1920, 1080) and "inputs" not in wide
    assert clip_seconds("klingai:5@3", 5.0, {"klingai": (5, 10)}) == 5
    assert clip_seconds("klingai:5@3", 5.2, {"klingai": (5, 10)}) == 10
    assert clip_seconds("klingai:5@3", 14.0, {"klingai": (5, 10)}) == 10
    assert clip_seconds("bytedance:2@1", 3.2, {"klingai": (5, 10)}) == 4


# As runware.ai/docs/models/google-veo-3-1-fast documents Veo 3.1 Fast on Runware.
VEO_FAST = ModelSpec(
    provider="runware",
    model="google:3@3",
    prompt_field="positivePrompt",
    first_frame_field="inputs.frameImages",
    durations=Durations(field="duration", values=[4, 6, 8]),
    aspect_ratio_field=None,
    sizes=["1280x720", "720x1280", "1920x1080", "1080x1920"],
    seed_field="seed",
    audio=True,
    audio_field="providerSettings.google.generateAudio",
)


def test_a_task_from_the_models_entry(tmp_path: Path) -> None:
    image = tmp_path / "board.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 16)
    job = clip_job(tmp_path, model="google:3@3", spec=VEO_FAST, duration=4.2, audio=False)
    sized = default_clip_task(job)
    assert sized["duration"] == 6 and sized["seed"] == 7
    assert (sized["width"], sized["height"]) == (1080, 1920)  # the listed size nearest tiktok's
    assert sized["providerSettings"] == {"google": {"generateAudio": False}}
    framed = default_clip_task(replace(job, image=image, audio=True))
    # "Provide exactly one of: inputs.frameImages or width/height" (the model page).
    assert "width" not in framed and "height" not in framed
    assert framed["inputs"]["frameImages"][0]["frame"] == "first"
    assert framed["inputs"]["frameImages"][0]["image"].startswith("data:image/png;base64,")
    assert framed["providerSettings"] == {"google": {"generateAudio": True}}
    # An entry naming no seed, sound or first-frame input: none of them is sent.
    bare = VEO_FAST.model_copy(
        update={"seed_field": None, "audio_field": None, "first_frame_field": None}
    )
    plain = default_clip_task(replace(job, image=image, spec=bare))
    assert not {"seed", "providerSettings", "inputs"} & set(plain)
    assert (plain["width"], plain["height"]) == (1080, 1920)
    # Without an entry, a google: model still gets its sound switch (job.audio).
    assert default_clip_task(replace(job, spec=None))["providerSettings"] == {
        "google": {"generateAudio": False}
    }


# --------------------------------------------------------------------------------------------
# Status, result, download


async def test_wait_reports_progress_then_downloads(
    connect: Callable[..., RunwareClient], sleep: FakeSleep, tmp_path: Path
) -> None:
    job = clip_job(tmp_path)
    task = task_uuid(job)
    video = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8
    lower = fixture("get_processing_progress", task)
    lower["data"][0]["progress"] = 20
    script = Script(
        answer("get_empty"),
        answer("get_processing", task),
        answer("get_processing_progress", task),
        httpx.Response(200, json=lower),  # a lower figure must not move the bar back
        answer("get_success", task),
        httpx.Response(200, content=video),
    )
    reports: list[tuple[ClipStatus, float]] = []

    output = await RunwareClipProvider(connect(script)).wait(
        task, job, lambda s, p: reports.append((s, p))
    )

    assert reports[:4] == [
        (ClipStatus.queued, 0.0),
        (ClipStatus.processing, 0.0),
        (ClipStatus.rendering, 40.0),
        (ClipStatus.rendering, 40.0),
    ]
    assert set(reports[4:]) == {(ClipStatus.rendering, 100.0)}
    assert sleep.delays == [3.0] * 4
    assert output.path == tmp_path / f"{task}.mp4" and output.path.read_bytes() == video
    assert [p.name for p in tmp_path.iterdir()] == [f"{task}.mp4"]  # no .part left behind
    download = script.requests[-1]
    assert str(download.url) == fixture("get_success", task)["data"][0]["videoURL"]
    assert "Authorization" not in download.headers  # the key stays with the API


@pytest.mark.parametrize(
    ("name", "status", "phase", "progress"),
    [
        ("get_empty", 200, PredictionPhase.queued, None),
        ("get_processing", 200, PredictionPhase.running, None),
        ("get_processing_progress", 200, PredictionPhase.running, 40.0),
        ("get_success", 200, PredictionPhase.succeeded, None),
        ("get_error", 400, PredictionPhase.failed, None),
        ("get_refused", 400, PredictionPhase.refused, None),
    ],
)
async def test_check_is_one_request(
    connect: Callable[..., RunwareClient],
    name: str,
    status: int,
    phase: PredictionPhase,
    progress: float | None,
) -> None:
    task = str(uuid.uuid4())
    script = Script(answer(name, task, status=status))
    update = await RunwareClipProvider(connect(script)).check(task, "klingai:5@3")
    assert len(script.requests) == 1
    assert script.tasks(0) == [{"taskType": "getResponse", "taskUUID": task}]
    assert (update.prediction_id, update.phase, update.progress) == (task, phase, progress)
    ended_badly = phase in (PredictionPhase.failed, PredictionPhase.refused)
    assert (update.error is not None) == ended_badly


async def test_a_failed_task_is_a_failed_prediction(
    connect: Callable[..., RunwareClient], tmp_path: Path
) -> None:
    task = task_uuid(clip_job(tmp_path))
    script = Script(answer("get_processing", task), answer("get_error", task, status=400))
    with pytest.raises(PredictionFailedError, match="timeoutProvider") as caught:
        await RunwareClipProvider(connect(script)).wait(task, clip_job(tmp_path), lambda s, p: None)
    assert type(caught.value) is PredictionFailedError


async def test_a_moderated_task_is_a_refusal(
    connect: Callable[..., RunwareClient], tmp_path: Path
) -> None:
    task = task_uuid(clip_job(tmp_path))
    script = Script(answer("get_refused", task, status=400))
    with pytest.raises(ProviderRefusedError, match="NSFW") as caught:
        await RunwareClipProvider(connect(script)).wait(task, clip_job(tmp_path), lambda s, p: None)
    assert caught.value.to_application_error().non_retryable


async def test_a_refused_prompt_at_submit_is_a_refusal(
    connect: Callable[..., RunwareClient], tmp_path: Path
) -> None:
    job = clip_job(tmp_path)
    script = Script(answer("get_empty"), answer("get_refused", task_uuid(job), status=400))
    with pytest.raises(ProviderRefusedError):
        await RunwareClipProvider(connect(script)).submit(job)


async def test_cancel_sends_nothing_and_never_raises(
    connect: Callable[..., RunwareClient], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    script = Script()
    await RunwareClipProvider(connect(script)).cancel("some-task", "klingai:5@3")
    assert script.requests == []
    assert "cannot be cancelled upstream" in caplog.text


# --------------------------------------------------------------------------------------------
# Errors and retries


@pytest.mark.parametrize("status", [200, 401, 403])
async def test_a_bad_key_is_rejected_at_once(
    connect: Callable[..., RunwareClient], sleep: FakeSleep, status: int
) -> None:
    script = Script(answer("invalid_api_key", status=status))
    with pytest.raises(ProviderRejectedError, match="invalidApiKey") as caught:
        await connect(script).get_response(str(uuid.uuid4()))
    assert caught.value.status_code == (401 if status == 200 else status)
    assert caught.value.to_application_error().non_retryable
    assert sleep.delays == [] and len(script.requests) == 1


async def test_429_waits_as_long_as_retry_after_says(
    connect: Callable[..., RunwareClient], sleep: FakeSleep
) -> None:
    task = str(uuid.uuid4())
    script = Script(httpx.Response(429, headers={"Retry-After": "7"}), answer("get_success", task))
    assert (await connect(script).get_response(task)).videoURL
    assert sleep.delays == [7.0] and len(script.requests) == 2


async def test_persistent_429_is_throttled(
    connect: Callable[..., RunwareClient], sleep: FakeSleep
) -> None:
    storm = [httpx.Response(429, headers={"Retry-After": "3600"}) for _ in range(3)]
    client = connect(Script(*storm), max_rate_limit_retries=2, max_retry_after=20.0)
    with pytest.raises(ProviderThrottledError, match="rate limited"):
        await client.get_response(str(uuid.uuid4()))
    assert sleep.delays == [20.0, 20.0]


async def test_one_flaky_500_is_retried(
    connect: Callable[..., RunwareClient], sleep: FakeSleep
) -> None:
    task = str(uuid.uuid4())
    script = Script(httpx.Response(500), answer("get_processing", task))
    update = await RunwareClipProvider(connect(script, backoff_base=0.5)).check(task, "m")
    assert update.phase is PredictionPhase.running
    assert sleep.delays == [0.5] and len(script.requests) == 2


async def test_malformed_bodies_are_retried_then_given_up(
    connect: Callable[..., RunwareClient], sleep: FakeSleep
) -> None:
    task = str(uuid.uuid4())
    script = Script(
        httpx.Response(200, content=b"<html>gateway</html>"),
        httpx.Response(200, json={"hello": "world"}),
        httpx.Response(200, json={"data": [{"taskUUID": task, "status": "exploded"}]}),
        answer("get_processing", task),
    )
    assert (await connect(script).get_response(task)).status == "processing"
    assert len(sleep.delays) == 3

    broken = Script(*(httpx.Response(200, content=b"{") for _ in range(3)))
    with pytest.raises(ProviderError, match="malformed") as caught:
        await connect(broken, max_retries=2).get_response(task)
    assert type(caught.value) is ProviderError


async def test_the_key_never_reaches_logs_errors_or_repr(
    connect: Callable[..., RunwareClient], caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)
    job = clip_job(tmp_path)
    task = task_uuid(job)
    request = httpx.Request("POST", API)
    script = Script(
        httpx.Response(429, headers={"Retry-After": "1"}),
        httpx.ReadTimeout("timed out", request=request),
        httpx.Response(502),
        answer("get_success", task),
        httpx.Response(200, content=b"video"),
        answer("invalid_api_key", status=401),
    )
    client = connect(script)
    provider = RunwareClipProvider(client)
    await provider.wait(task, job, lambda s, p: None)
    with pytest.raises(ProviderRejectedError) as caught:
        await provider.submit(job)
    await provider.cancel(task, job.model)

    assert caplog.records
    assert all(KEY not in record.getMessage() for record in caplog.records)
    assert KEY not in str(caught.value) and KEY not in repr(client)
