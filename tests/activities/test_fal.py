"""The fal adapter against scripted HTTP answers shaped like fal's docs (tests/fixtures/fal)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from activities.providers.base import ClipJob
from activities.providers.fal import (
    FalClipProvider,
    default_clip_input,
    output_url,
    snapped_clip_input,
)
from activities.providers.fal_api import FalClient, app_id
from storyreel.contracts import PLATFORMS, ClipStatus, Platform, PredictionPhase
from storyreel.errors import (
    BadInputError,
    PredictionFailedError,
    ProviderError,
    ProviderRefusedError,
    ProviderRejectedError,
    ProviderThrottledError,
)

KEY = "fal-key-id:TopSecretFalKeyThatMustNeverBeLogged"
BASE = "https://queue.fal.run"
MODEL = "fal-ai/kling-video/v2/master/text-to-video"
APP = "fal-ai/kling-video"
RID = "80e732af-660e-45cd-bd63-580e4f2a94cc"
VIDEO_URL = "https://v3.fal.media/files/penguin/kling-output/output.mp4"
FIXTURES = Path(__file__).parents[1] / "fixtures" / "fal"
Handler = Callable[[httpx.Request], httpx.Response]


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text())


class FakeSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


class Script:
    """A transport handler answering from a list, one answer (or exception) per request."""

    def __init__(self, *answers: httpx.Response | Exception | Handler) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if not self.answers:
            raise AssertionError(f"unexpected request {request.method} {request.url}")
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, httpx.Response):
            return answer
        return answer(request)

    @property
    def urls(self) -> list[str]:
        return [f"{request.method} {request.url}" for request in self.requests]


def ok(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def video_bytes(request: httpx.Request) -> httpx.Response:
    assert "authorization" not in request.headers, "the key must not leave fal's queue origin"
    return httpx.Response(200, content=b"\x00\x00\x00\x18ftypmp42" + b"v" * 5000)


@pytest.fixture
def sleep() -> FakeSleep:
    return FakeSleep()


@pytest.fixture
async def connect(sleep: FakeSleep) -> AsyncIterator[Callable[..., FalClient]]:
    clients: list[FalClient] = []

    def make(handler: Handler, **options: Any) -> FalClient:
        options = {"sleep": sleep, "jitter": lambda: 1.0, **options}
        client = FalClient(BASE, KEY, transport=httpx.MockTransport(handler), **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


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


# --------------------------------------------------------------------------------------------
# Model ids and inputs


@pytest.mark.parametrize(
    ("model", "app"),
    [
        ("fal-ai/fast-sdxl", "fal-ai/fast-sdxl"),
        ("fal-ai/flux/dev", "fal-ai/flux"),
        (MODEL, APP),
        ("workflows/acme/my-flow", "workflows/acme/my-flow"),
    ],
)
def test_status_urls_use_the_app_without_the_endpoint_path(model: str, app: str) -> None:
    assert app_id(model) == app


@pytest.mark.parametrize("model", ["kling", "", "fal-ai/", "fal-ai/../etc", "a b/c", "workflows/x"])
def test_a_malformed_model_id_is_bad_input(model: str) -> None:
    with pytest.raises(BadInputError):
        app_id(model)


def test_default_input_is_a_typical_fal_video_models(tmp_path: Path) -> None:
    image = tmp_path / "board.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + b"p" * 32)
    payload = default_clip_input(clip_job(tmp_path, image=image))
    assert payload["prompt"] == "A lighthouse at dusk\n\nSCENE: waves"
    assert payload["duration"] == "3"  # whole seconds, rounded up, as a string
    assert payload["aspect_ratio"] == "9:16"
    assert payload["seed"] == 7
    assert payload["image_url"].startswith("data:image/png;base64,")
    assert "image_url" not in default_clip_input(clip_job(tmp_path))


def test_snapped_input_picks_the_shortest_duration_that_covers_the_scene(tmp_path: Path) -> None:
    build = snapped_clip_input([10, 5])
    assert build(clip_job(tmp_path, duration=2.5))["duration"] == "5"
    assert build(clip_job(tmp_path, duration=7))["duration"] == "10"
    assert build(clip_job(tmp_path, duration=12))["duration"] == "10"


@pytest.mark.parametrize(
    "result",
    [
        fixture("result_video"),
        {"video": VIDEO_URL},
        {"videos": [{"url": VIDEO_URL}]},
        {"video_url": VIDEO_URL},
        {"output": {"video": VIDEO_URL, "url": VIDEO_URL}},
    ],
)
def test_the_video_is_found_in_the_common_output_shapes(result: dict[str, Any]) -> None:
    assert output_url(result, RID).startswith("https://v3.fal.media/")


def test_an_output_without_a_video_fails_the_prediction() -> None:
    with pytest.raises(PredictionFailedError, match="without a video"):
        output_url({"images": [], "seed": 3}, RID)


# --------------------------------------------------------------------------------------------
# The queue


async def test_submit_posts_the_input_to_the_full_model_id_with_the_key(connect) -> None:
    script = Script(ok(fixture("submit")))
    client = connect(script)
    submission = await client.submit(MODEL, {"prompt": "a cat"}, webhook="https://us.example/hook")
    (request,) = script.requests
    assert request.method == "POST"
    assert request.url.path == f"/{MODEL}"
    assert request.url.params["fal_webhook"] == "https://us.example/hook"
    assert request.headers["authorization"] == f"Key {KEY}"
    assert json.loads(request.content) == {"prompt": "a cat"}
    assert submission.request_id == RID
    assert submission.status_url == f"{BASE}/{APP}/requests/{RID}/status"


async def test_submit_without_a_webhook_sends_no_query(connect) -> None:
    script = Script(ok(fixture("submit")))
    await connect(script).submit(MODEL, {"prompt": "a cat"})
    assert script.requests[0].url.query == b""


async def test_status_result_and_cancel_use_the_app_url(connect) -> None:
    script = Script(
        ok(fixture("status_in_queue")),
        ok(fixture("result_video")),
        ok(fixture("cancel_requested"), 202),
    )
    client = connect(script)
    status = await client.status(MODEL, RID, logs=True)
    result = await client.result(MODEL, RID)
    word = await client.cancel(MODEL, RID)
    assert script.urls == [
        f"GET {BASE}/{APP}/requests/{RID}/status?logs=1",
        f"GET {BASE}/{APP}/requests/{RID}",
        f"PUT {BASE}/{APP}/requests/{RID}/cancel",
    ]
    assert all(r.headers["authorization"] == f"Key {KEY}" for r in script.requests)
    assert status.queue_position == 0
    assert result["video"]["url"] == VIDEO_URL
    assert word == "CANCELLATION_REQUESTED"


async def test_cancelling_an_ended_request_is_not_an_error(connect) -> None:
    client = connect(Script(ok(fixture("cancel_already_completed"), 400)))
    assert await client.cancel(MODEL, RID) == "ALREADY_COMPLETED"


@pytest.mark.parametrize(
    ("name", "phase", "clip_status"),
    [
        ("status_in_queue", PredictionPhase.queued, ClipStatus.queued),
        ("status_in_progress", PredictionPhase.running, ClipStatus.rendering),
        ("status_completed", PredictionPhase.succeeded, ClipStatus.complete),
    ],
)
async def test_check_is_one_status_read(connect, name, phase, clip_status) -> None:
    script = Script(ok(fixture(name)))
    provider = FalClipProvider(connect(script))
    update = await provider.check(RID, MODEL)
    assert len(script.requests) == 1
    assert script.requests[0].url.path == f"/{APP}/requests/{RID}/status"
    assert (update.prediction_id, update.phase, update.error) == (RID, phase, None)
    assert update.ended == (phase is PredictionPhase.succeeded)


async def test_progress_comes_from_the_status_logs(connect) -> None:
    client = connect(Script(ok(fixture("status_in_progress"))))
    status = await client.status(MODEL, RID, logs=True)
    assert status.progress == 40.0
    assert status.clip_status is ClipStatus.rendering


@pytest.mark.parametrize(
    ("error", "error_type", "phase"),
    [
        ("Request timed out", "request_timeout", PredictionPhase.failed),
        ("The content was flagged by a content checker.", None, PredictionPhase.refused),
        (None, "content_policy_violation", PredictionPhase.refused),
    ],
)
async def test_a_completed_status_carrying_an_error_is_an_ended_failure(
    connect, error, error_type, phase
) -> None:
    body = fixture("status_completed") | {"error": error, "error_type": error_type}
    update = await FalClipProvider(connect(Script(ok(body)))).check(RID, MODEL)
    assert update.phase is phase
    assert update.error


async def test_an_unknown_request_is_a_failed_prediction(connect) -> None:
    client = connect(Script(ok({"detail": "Request not found"}, 404)))
    with pytest.raises(PredictionFailedError, match="not found"):
        await client.status(MODEL, RID)


# --------------------------------------------------------------------------------------------
# Errors, retries, rate limits


@pytest.mark.parametrize("status", [401, 403])
async def test_a_bad_key_is_rejected_at_once(connect, status: int) -> None:
    script = Script(ok({"detail": "No user found for Key ID and Secret"}, status))
    with pytest.raises(ProviderRejectedError) as raised:
        await connect(script).submit(MODEL, {"prompt": "a cat"})
    assert raised.value.status_code == status
    assert "No user found" in str(raised.value)
    assert not raised.value.retryable
    assert len(script.requests) == 1


async def test_an_invalid_input_is_rejected(connect) -> None:
    problem = {"detail": [{"loc": ["body", "duration"], "msg": "unexpected value", "type": "x"}]}
    with pytest.raises(ProviderRejectedError, match="unexpected value") as raised:
        await connect(Script(ok(problem, 422))).submit(MODEL, {"duration": "7"})
    assert raised.value.status_code == 422


async def test_a_refused_input_on_submit_is_a_refusal(connect) -> None:
    with pytest.raises(ProviderRefusedError, match="content checker"):
        await connect(Script(ok(fixture("error_content_policy"), 422))).submit(MODEL, {})


async def test_429_honours_retry_after_then_succeeds(connect, sleep: FakeSleep) -> None:
    script = Script(
        ok({"detail": "Too many requests"}, 429, {"Retry-After": "7"}),
        ok({"detail": "Too many requests"}, 429, {"Retry-After": "2"}),
        ok(fixture("submit")),
    )
    submission = await connect(script).submit(MODEL, {"prompt": "a cat"})
    assert submission.request_id == RID
    assert sleep.delays == [7.0, 2.0]


async def test_a_persistent_429_is_throttled(connect, sleep: FakeSleep) -> None:
    always = ok({"detail": "Too many requests"}, 429, {"Retry-After": "1"})
    client = connect(Script(*[always] * 4), max_rate_limit_retries=3)
    with pytest.raises(ProviderThrottledError, match="gave up"):
        await client.submit(MODEL, {"prompt": "a cat"})
    assert sleep.delays == [1.0, 1.0, 1.0]


async def test_one_500_is_retried_once(connect, sleep: FakeSleep) -> None:
    script = Script(ok({"detail": "Internal Server Error"}, 500), ok(fixture("status_completed")))
    status = await connect(script).status(MODEL, RID)
    assert status.done
    assert len(script.requests) == 2
    assert sleep.delays == [0.5]  # backoff_base with the jitter at its top


async def test_transport_errors_are_retried(connect) -> None:
    script = Script(httpx.ConnectError("refused"), ok(fixture("status_in_queue")))
    assert (await connect(script).status(MODEL, RID)).queue_position == 0


async def test_malformed_bodies_are_retried_then_give_up(connect) -> None:
    cut = httpx.Response(200, content=b'{"status": "IN_PROG')
    script = Script(cut, ok({"status": "WHATEVER"}), ok(fixture("status_in_progress")))
    assert (await connect(script).status(MODEL, RID)).progress == 40.0
    client = connect(Script(*[cut] * 3), max_retries=2)
    with pytest.raises(ProviderError, match="malformed") as raised:
        await client.status(MODEL, RID)
    assert type(raised.value) is ProviderError


async def test_a_refused_result_is_a_refusal(connect) -> None:
    client = connect(Script(ok(fixture("error_content_policy"), 422)))
    with pytest.raises(ProviderRefusedError, match="content checker"):
        await client.result(MODEL, RID)


async def test_a_failed_request_is_a_failed_prediction_not_retried(connect) -> None:
    timeout = ok(fixture("error_request_timeout"), 504, {"X-Fal-Error-Type": "request_timeout"})
    script = Script(timeout)
    with pytest.raises(PredictionFailedError, match="Request timed out"):
        await connect(script).result(MODEL, RID)
    assert len(script.requests) == 1


async def test_a_bare_5xx_on_the_result_is_retried(connect) -> None:
    script = Script(
        httpx.Response(502, text="<html>Bad Gateway</html>"), ok(fixture("result_video"))
    )
    assert (await connect(script).result(MODEL, RID))["video"]["url"] == VIDEO_URL


async def test_the_older_result_envelope_is_unwrapped(connect) -> None:
    body = {"status": "COMPLETED", "logs": [], "response": fixture("result_video")}
    assert (await connect(Script(ok(body))).result(MODEL, RID))["video"]["url"] == VIDEO_URL


# --------------------------------------------------------------------------------------------
# The provider


async def test_wait_polls_to_completion_reports_progress_and_downloads(
    connect, sleep: FakeSleep, tmp_path: Path
) -> None:
    script = Script(
        ok(fixture("status_in_queue")),
        ok(fixture("status_in_progress")),
        ok(fixture("status_completed")),
        ok(fixture("result_video")),
        video_bytes,
    )
    provider = FalClipProvider(connect(script, poll_interval=1.5))
    reports: list[tuple[ClipStatus, float]] = []
    output = await provider.wait(RID, clip_job(tmp_path), lambda s, p: reports.append((s, p)))
    assert output.path == tmp_path / f"{RID}.mp4"
    assert output.path.read_bytes().startswith(b"\x00\x00\x00\x18ftyp")
    assert not list(tmp_path.glob("*.part"))
    assert output.predict_time == pytest.approx(17.795, abs=0.001)
    assert reports[:2] == [(ClipStatus.queued, 0.0), (ClipStatus.rendering, 40.0)]
    assert reports[-1] == (ClipStatus.rendering, 100.0)
    assert sleep.delays == [1.5, 1.5]
    assert script.requests[0].url.params["logs"] == "1"
    assert script.urls[-1] == f"GET {VIDEO_URL}"


async def test_wait_raises_what_the_result_says(connect, tmp_path: Path) -> None:
    script = Script(ok(fixture("status_completed")), ok(fixture("error_content_policy"), 422))
    with pytest.raises(ProviderRefusedError):
        await FalClipProvider(connect(script)).wait(RID, clip_job(tmp_path), lambda *_: None)


async def test_a_gone_output_fails_the_prediction(connect, tmp_path: Path) -> None:
    script = Script(
        ok(fixture("status_completed")),
        ok(fixture("result_video")),
        httpx.Response(404, text="gone"),
    )
    with pytest.raises(PredictionFailedError, match="gone"):
        await FalClipProvider(connect(script)).wait(RID, clip_job(tmp_path), lambda *_: None)
    assert not list(tmp_path.iterdir())


async def test_submit_passes_the_webhook_and_returns_the_request_id(connect, tmp_path) -> None:
    script = Script(ok(fixture("submit")))
    provider = FalClipProvider(connect(script))
    assert provider.calls_back
    hook = "https://api.example/v1/webhooks/fal?generation=g1&clip=2"
    assert await provider.submit(clip_job(tmp_path), hook) == RID
    request = script.requests[0]
    assert request.url.params["fal_webhook"] == hook
    assert json.loads(request.content)["duration"] == "3"


async def test_cancel_never_raises(connect, caplog: pytest.LogCaptureFixture) -> None:
    script = Script(*[ok({"detail": "boom"}, 500)] * 3)
    provider = FalClipProvider(connect(script, max_retries=2))
    with caplog.at_level(logging.WARNING):
        await provider.cancel(RID, MODEL)
    assert "could not cancel fal request" in caplog.text


# --------------------------------------------------------------------------------------------
# The key stays secret


async def test_the_key_is_in_no_repr_and_no_log(
    connect, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    script = Script(
        ok({"detail": "Internal Server Error"}, 500),
        ok(fixture("submit")),
        ok({"detail": "nope"}, 429),
        ok(fixture("status_completed")),
        ok(fixture("result_video")),
        video_bytes,
    )
    client = connect(script)
    assert KEY not in repr(client)
    assert "key=set" in repr(client)
    provider = FalClipProvider(client)
    with caplog.at_level(logging.DEBUG):
        request_id = await provider.submit(clip_job(tmp_path))
        await provider.wait(request_id, clip_job(tmp_path), lambda *_: None)
    assert "retry" in caplog.text
    assert KEY not in caplog.text
    assert KEY.split(":")[1] not in caplog.text
