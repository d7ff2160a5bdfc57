"""The Veo (Gemini API) adapter against answers shaped like its docs (tests/fixtures/veo)."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from activities.providers.base import ClipJob
from activities.providers.veo import VeoClipProvider, clip_seconds, default_clip_body
from activities.providers.veo_api import VeoClient
from storyreel.catalogue import Durations, ModelSpec
from storyreel.contracts import PLATFORMS, ClipStatus, Platform, PredictionPhase
from storyreel.errors import (
    PredictionFailedError,
    ProviderError,
    ProviderRefusedError,
    ProviderRejectedError,
    ProviderThrottledError,
)

KEY = "AIzaTopSecretKeyThatMustNeverBeLogged"
API = "https://generativelanguage.googleapis.com"
MODEL = "veo-3.1-generate-preview"
NAME = f"models/{MODEL}/operations/4zx7o6vbq2l1"
FILE_URI = f"{API}/v1beta/files/3k9d2c:download?alt=media"
FIXTURES = Path(__file__).parents[1] / "fixtures" / "veo"


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


def answer(name: str, status: int = 200, **headers: str) -> httpx.Response:
    body = json.loads((FIXTURES / f"{name}.json").read_text())
    return httpx.Response(status, json=body, headers=headers)


def clip_job(tmp_path: Path, **changes: Any) -> ClipJob:
    fields: dict[str, Any] = {
        "generation_id": "g1",
        "clip_id": 2,
        "prompt": "A lighthouse at dusk\n\nSCENE: waves",
        "text": "waves",
        "duration": 2.5,
        "platform": PLATFORMS[Platform.tiktok],
        "model": MODEL,
        "seed": 7,
        "image": None,
        "workdir": tmp_path,
    }
    return ClipJob(**(fields | changes))


@pytest.fixture
def sleep() -> FakeSleep:
    return FakeSleep()


@pytest.fixture
async def connect(sleep: FakeSleep) -> AsyncIterator[Callable[..., VeoClient]]:
    clients: list[VeoClient] = []

    def make(script: Script, **options: Any) -> VeoClient:
        options = {"sleep": sleep, "jitter": lambda: 1.0, "poll_interval": 10.0, **options}
        client = VeoClient(KEY, transport=httpx.MockTransport(script), **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


# --------------------------------------------------------------------------------------------
# Submit


async def test_submit_starts_an_operation(
    connect: Callable[..., VeoClient], tmp_path: Path
) -> None:
    image = tmp_path / "reference.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    script = Script(answer("operation_started"))

    name = await VeoClipProvider(connect(script)).submit(clip_job(tmp_path, image=image))

    assert name == NAME
    (request,) = script.requests
    assert (request.method, str(request.url)) == (
        "POST",
        f"{API}/v1beta/models/{MODEL}:predictLongRunning",
    )
    assert request.headers["x-goog-api-key"] == KEY
    assert request.headers["Content-Type"] == "application/json"
    assert "Authorization" not in request.headers and "key" not in request.url.params
    assert json.loads(request.content) == {
        "instances": [
            {
                "prompt": "A lighthouse at dusk\n\nSCENE: waves",
                "image": {
                    "bytesBase64Encoded": base64.b64encode(image.read_bytes()).decode(),
                    "mimeType": "image/png",
                },
            }
        ],
        "parameters": {"aspectRatio": "9:16", "durationSeconds": 4},
    }


@pytest.mark.parametrize(
    ("model", "duration", "seconds"),
    [
        (MODEL, 2.5, 4),
        (MODEL, 4.0, 4),
        (MODEL, 5.0, 6),
        (MODEL, 7.1, 8),
        (MODEL, 12.0, 8),
        ("veo-2.0-generate-001", 2.5, 5),
        ("veo-2.0-generate-001", 6.2, 7),
    ],
)
def test_duration_is_rounded_up_to_what_the_model_takes(
    model: str, duration: float, seconds: int
) -> None:
    assert clip_seconds(model, duration) == seconds


def test_a_wide_job_without_image(tmp_path: Path) -> None:
    body = default_clip_body(clip_job(tmp_path, platform=PLATFORMS[Platform.youtube]))
    assert body == {
        "instances": [{"prompt": "A lighthouse at dusk\n\nSCENE: waves"}],
        "parameters": {"aspectRatio": "16:9", "durationSeconds": 4},
    }


def test_a_body_from_the_models_entry(tmp_path: Path) -> None:
    spec = ModelSpec(
        provider="veo",
        model=MODEL,
        durations=Durations(field="durationSeconds", values=[4, 6, 8]),
        aspect_ratio_field="aspectRatio",
        aspect_ratios=["16:9", "9:16"],
        resolution_field="resolution",
        resolutions=["4k", "1080p", "720p"],
        first_frame_field="image",
    )
    job = clip_job(tmp_path, spec=spec, duration=4.5, platform=PLATFORMS[Platform.youtube])
    assert default_clip_body(job)["parameters"] == {
        "aspectRatio": "16:9",
        "durationSeconds": 6,
        "resolution": "720p",  # the lowest: 1080p and 4k make 8 s clips only
    }
    seeded = spec.model_copy(update={"seed_field": "seed", "resolutions": []})
    assert default_clip_body(replace(job, spec=seeded))["parameters"] == {
        "aspectRatio": "16:9",
        "durationSeconds": 6,
        "seed": 7,
    }
    image = tmp_path / "board.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 16)
    no_frame = spec.model_copy(update={"first_frame_field": None})
    assert (
        "image" not in default_clip_body(replace(job, spec=no_frame, image=image))["instances"][0]
    )


# --------------------------------------------------------------------------------------------
# Status, result, download


async def test_wait_reports_progress_then_downloads_with_the_key(
    connect: Callable[..., VeoClient], sleep: FakeSleep, tmp_path: Path
) -> None:
    video = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8
    script = Script(
        answer("operation_running"),
        answer("operation_running_progress"),
        answer("operation_done"),
        httpx.Response(200, content=video),
    )
    reports: list[tuple[ClipStatus, float]] = []

    output = await VeoClipProvider(connect(script)).wait(
        NAME, clip_job(tmp_path), lambda s, p: reports.append((s, p))
    )

    assert reports[:2] == [(ClipStatus.processing, 0.0), (ClipStatus.rendering, 50.0)]
    assert set(reports[2:]) == {(ClipStatus.rendering, 100.0)}
    assert sleep.delays == [10.0, 10.0]
    assert [str(r.url) for r in script.requests[:3]] == [f"{API}/v1beta/{NAME}"] * 3
    download = script.requests[3]
    assert str(download.url) == FILE_URI and download.headers["x-goog-api-key"] == KEY
    assert output.path == tmp_path / "4zx7o6vbq2l1.mp4" and output.path.read_bytes() == video
    assert [p.name for p in tmp_path.iterdir()] == ["4zx7o6vbq2l1.mp4"]


async def test_a_redirected_download_leaves_the_key_behind(
    connect: Callable[..., VeoClient], tmp_path: Path
) -> None:
    elsewhere = "https://storage.googleapis.com/generated/3k9d2c.mp4?X-Goog-Signature=abc"
    script = Script(
        httpx.Response(302, headers={"Location": elsewhere}),
        httpx.Response(200, content=b"video"),
    )
    assert await connect(script).download(FILE_URI, tmp_path / "a.mp4") == 5
    first, second = script.requests
    assert first.headers["x-goog-api-key"] == KEY
    assert str(second.url) == elsewhere and "x-goog-api-key" not in second.headers


@pytest.mark.parametrize(
    ("name", "phase", "progress"),
    [
        ("operation_running", PredictionPhase.running, None),
        ("operation_running_progress", PredictionPhase.running, 50.0),
        ("operation_done", PredictionPhase.succeeded, None),
        ("operation_error", PredictionPhase.failed, None),
        ("operation_filtered", PredictionPhase.refused, None),
    ],
)
async def test_check_is_one_request(
    connect: Callable[..., VeoClient], name: str, phase: PredictionPhase, progress: float | None
) -> None:
    script = Script(answer(name))
    update = await VeoClipProvider(connect(script)).check(NAME, MODEL)
    assert [(r.method, str(r.url)) for r in script.requests] == [("GET", f"{API}/v1beta/{NAME}")]
    assert (update.prediction_id, update.phase, update.progress) == (NAME, phase, progress)


async def test_a_filtered_video_is_a_refusal(
    connect: Callable[..., VeoClient], tmp_path: Path
) -> None:
    script = Script(answer("operation_filtered"))
    with pytest.raises(ProviderRefusedError, match="Responsible AI") as caught:
        await VeoClipProvider(connect(script)).wait(NAME, clip_job(tmp_path), lambda s, p: None)
    assert caught.value.to_application_error().non_retryable


async def test_a_refused_prompt_at_submit_is_a_refusal(
    connect: Callable[..., VeoClient], sleep: FakeSleep, tmp_path: Path
) -> None:
    script = Script(answer("error_rai_prompt", status=400))
    with pytest.raises(ProviderRefusedError, match="Responsible AI"):
        await VeoClipProvider(connect(script)).submit(clip_job(tmp_path))
    assert sleep.delays == []


async def test_a_failed_operation_is_a_failed_prediction(
    connect: Callable[..., VeoClient], tmp_path: Path
) -> None:
    script = Script(answer("operation_error"))
    with pytest.raises(PredictionFailedError, match="internal error") as caught:
        await VeoClipProvider(connect(script)).wait(NAME, clip_job(tmp_path), lambda s, p: None)
    assert type(caught.value) is PredictionFailedError


async def test_an_unknown_or_malformed_operation_means_a_new_one(
    connect: Callable[..., VeoClient],
) -> None:
    script = Script(httpx.Response(404, json={"error": {"code": 404, "status": "NOT_FOUND"}}))
    client = connect(script)
    with pytest.raises(PredictionFailedError, match="not found"):
        await client.get(NAME)
    with pytest.raises(PredictionFailedError, match="not a Veo operation"):
        await client.get("../../files/other:download")
    assert len(script.requests) == 1  # the malformed name was never sent


async def test_cancel_is_best_effort(
    connect: Callable[..., VeoClient], caplog: pytest.LogCaptureFixture
) -> None:
    script = Script(httpx.Response(200, json={}), *(httpx.Response(503) for _ in range(3)))
    provider = VeoClipProvider(connect(script, max_retries=2))
    await provider.cancel(NAME, MODEL)
    await provider.cancel(NAME, MODEL)  # the service is down: logged, not raised
    assert [(r.method, str(r.url)) for r in script.requests[:2]] == [
        ("POST", f"{API}/v1beta/{NAME}:cancel")
    ] * 2
    assert "could not cancel Veo operation" in caplog.text


# --------------------------------------------------------------------------------------------
# Errors and retries


@pytest.mark.parametrize(
    ("name", "status"), [("error_permission_denied", 403), ("error_api_key_invalid", 400)]
)
async def test_a_bad_key_is_rejected_at_once(
    connect: Callable[..., VeoClient], sleep: FakeSleep, name: str, status: int
) -> None:
    script = Script(answer(name, status=status))
    with pytest.raises(ProviderRejectedError) as caught:
        await connect(script).get(NAME)
    assert caught.value.status_code == status
    assert caught.value.to_application_error().non_retryable
    assert sleep.delays == [] and len(script.requests) == 1


async def test_429_honours_retry_after_and_retry_info(
    connect: Callable[..., VeoClient], sleep: FakeSleep
) -> None:
    script = Script(
        answer("error_resource_exhausted", status=429, **{"Retry-After": "7"}),
        answer("error_resource_exhausted", status=429),
        answer("operation_running"),
    )
    assert (await connect(script).get(NAME)).name == NAME
    assert sleep.delays == [7.0, 12.0]


async def test_persistent_429_is_throttled(
    connect: Callable[..., VeoClient], sleep: FakeSleep
) -> None:
    client = connect(Script(*(httpx.Response(429) for _ in range(3))), max_rate_limit_retries=2)
    with pytest.raises(ProviderThrottledError, match="rate limited"):
        await client.get(NAME)
    assert sleep.delays == [0.5, 1.0]


async def test_one_flaky_500_is_retried(
    connect: Callable[..., VeoClient], sleep: FakeSleep
) -> None:
    script = Script(httpx.Response(500), answer("operation_done"))
    update = await VeoClipProvider(connect(script)).check(NAME, MODEL)
    assert update.phase is PredictionPhase.succeeded
    assert sleep.delays == [0.5] and len(script.requests) == 2


async def test_malformed_bodies_are_retried_then_given_up(
    connect: Callable[..., VeoClient], sleep: FakeSleep
) -> None:
    script = Script(
        httpx.Response(200, content=b"<html>gateway</html>"),
        httpx.Response(200, json={"done": True}),
        answer("operation_running"),
    )
    assert (await connect(script).get(NAME)).done is False
    assert len(sleep.delays) == 2

    broken = Script(*(httpx.Response(200, content=b"{") for _ in range(3)))
    with pytest.raises(ProviderError, match="malformed") as caught:
        await connect(broken, max_retries=2).get(NAME)
    assert type(caught.value) is ProviderError


async def test_the_key_never_reaches_logs_errors_urls_or_repr(
    connect: Callable[..., VeoClient], caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)
    request = httpx.Request("GET", f"{API}/v1beta/{NAME}")
    script = Script(
        httpx.Response(429, headers={"Retry-After": "1"}),
        httpx.ReadTimeout("timed out", request=request),
        httpx.Response(500),
        answer("operation_done"),
        httpx.Response(200, content=b"video"),
        answer("error_api_key_invalid", status=400),
        *(httpx.Response(502) for _ in range(3)),
        httpx.Response(403, json={"error": {"code": 403, "message": "denied"}}),
    )
    client = connect(script, max_retries=2)
    provider = VeoClipProvider(client)
    await provider.wait(NAME, clip_job(tmp_path), lambda s, p: None)
    errors: list[ProviderError] = []
    for attempt in (provider.submit(clip_job(tmp_path)), client.get(NAME)):
        try:
            await attempt
        except ProviderError as error:
            errors.append(error)
    await provider.cancel(NAME, MODEL)

    assert len(errors) == 2 and caplog.records
    assert all(KEY not in record.getMessage() for record in caplog.records)
    assert all(KEY not in str(error) for error in errors)
    assert all(KEY not in str(r.url) for r in script.requests)
    assert KEY not in repr(client)
