"""The Replicate adapter against scripted HTTP answers: retries, errors, progress, downloads."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import tracemalloc
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from activities.providers.base import ClipJob, ImageJob
from activities.providers.replicate import (
    ReplicateClipProvider,
    ReplicateImageProvider,
    default_clip_input,
)
from activities.providers.replicate_api import (
    Prediction,
    ProviderRejectedError,
    RateLimit,
    ReplicateClient,
    tqdm_percent,
)
from storyreel.contracts import PLATFORMS, ClipStatus, Platform
from storyreel.errors import (
    BadInputError,
    PredictionFailedError,
    ProviderError,
    ProviderRefusedError,
    ProviderThrottledError,
)

TOKEN = "r8_TopSecretTokenThatMustNeverBeLogged"
BASE = "https://api.replicate.com"
VIDEO_URL = "https://replicate.delivery/xezq/abc/output.mp4"
Handler = Callable[[httpx.Request], httpx.Response]


class FakeSleep:
    """Records the delays asked for instead of waiting."""

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


def prediction(status: str = "processing", id: str = "p1", **fields: Any) -> dict[str, Any]:
    return {"id": id, "model": "acme/video", "version": "v1", "status": status, **fields}


def ok(
    body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def problem(status: int, title: str, detail: str) -> httpx.Response:
    body = {"title": title, "detail": detail, "status": status}
    return httpx.Response(
        status, content=json.dumps(body), headers={"Content-Type": "application/problem+json"}
    )


@pytest.fixture
def sleep() -> FakeSleep:
    return FakeSleep()


@pytest.fixture
async def connect(sleep: FakeSleep) -> AsyncIterator[Callable[..., ReplicateClient]]:
    clients: list[ReplicateClient] = []

    def make(handler: Handler, **options: Any) -> ReplicateClient:
        options = {"sleep": sleep, "jitter": lambda: 1.0, **options}
        client = ReplicateClient(BASE, TOKEN, transport=httpx.MockTransport(handler), **options)
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
        "model": "acme/video",
        "seed": 7,
        "image": None,
        "workdir": tmp_path,
    }
    return ClipJob(**(fields | changes))


# --------------------------------------------------------------------------------------------
# Parsing


@pytest.mark.parametrize(
    ("logs", "percent"),
    [
        (" 45%|████▌     | 45/100 [00:04<00:05, 10.00it/s]", 45.0),
        ("  0%|  | 0/50 [00:00<?, ?it/s]\n 12%|█▏ | 6/50 [00:00<00:02]\n", 12.0),
        ("loading\r 10%|█ | 1/10\r 30%|███ | 3/10\rdone", 30.0),
        ("100%|██████████| 50/50 [00:10<00:00]\n  4%|▍ | 2/50 [00:00<00:09]", 4.0),
        ("step 45/100 [00:04<00:05, 10.00it/s]", 45.0),
        ("Using seed: 42069\nPrompt: a corgi", None),
        ("saved to 2024/10/out.png", None),
        ("", None),
        (None, None),
    ],
)
def test_progress_comes_from_the_last_tqdm_line(logs: str | None, percent: float | None) -> None:
    assert tqdm_percent(logs) == percent


@pytest.mark.parametrize(
    ("status", "logs", "ours"),
    [
        ("starting", "", ClipStatus.queued),
        ("processing", "Loading model", ClipStatus.processing),
        ("processing", " 45%|████▌ | 45/100", ClipStatus.rendering),
        ("succeeded", None, ClipStatus.complete),
        ("failed", None, ClipStatus.failed),
        ("canceled", None, ClipStatus.failed),
        ("aborted", None, ClipStatus.failed),
    ],
)
def test_status_mapping(status: str, logs: str | None, ours: ClipStatus) -> None:
    assert Prediction.model_validate(prediction(status, logs=logs)).clip_status is ours


@pytest.mark.parametrize(
    ("output", "url"),
    [
        (VIDEO_URL, VIDEO_URL),
        ([VIDEO_URL, "https://replicate.delivery/x/second.mp4"], VIDEO_URL),
        ({"url": VIDEO_URL, "duration": 5}, VIDEO_URL),
        ("data:video/mp4;base64,AAAA", "data:video/mp4;base64,AAAA"),
    ],
)
def test_output_url(output: Any, url: str) -> None:
    assert Prediction.model_validate(prediction("succeeded", output=output)).output_url() == url


@pytest.mark.parametrize("output", [None, [], "just some text", {"frames": 120}, [None]])
def test_succeeded_without_a_usable_output_is_a_failed_prediction(output: Any) -> None:
    done = Prediction.model_validate(prediction("succeeded", output=output))
    with pytest.raises(PredictionFailedError, match="no usable output"):
        done.output_url()
    removed = done.model_copy(update={"data_removed": True})
    with pytest.raises(PredictionFailedError, match="output was removed"):
        removed.output_url()


# --------------------------------------------------------------------------------------------
# Requests


async def test_create_by_model_and_by_version(connect: Callable[..., ReplicateClient]) -> None:
    script = Script(*(ok(prediction("starting"), 201) for _ in range(3)))
    client = connect(script)
    version = "a" * 64

    await client.create("acme/video", {"prompt": "x"}, wait=30, cancel_after="15m")
    await client.create(f"acme/video:{version}", {"prompt": "x"})
    await client.create(version, {"prompt": "x"})

    by_model, by_pinned, by_id = script.requests
    assert (by_model.method, by_model.url.path) == ("POST", "/v1/models/acme/video/predictions")
    assert json.loads(by_model.content) == {"input": {"prompt": "x"}}
    assert by_model.headers["Prefer"] == "wait=30"
    assert by_model.headers["Cancel-After"] == "15m"
    for request in (by_pinned, by_id):
        assert request.url.path == "/v1/predictions"
        assert json.loads(request.content) == {"version": version, "input": {"prompt": "x"}}
        assert "Prefer" not in request.headers and "Cancel-After" not in request.headers
    assert all(r.headers["Authorization"] == f"Bearer {TOKEN}" for r in script.requests)


@pytest.mark.parametrize("model", ["video", "acme/video/extra", "acme/video:", "", "../x/y"])
async def test_a_malformed_model_name_is_bad_input(
    connect: Callable[..., ReplicateClient], model: str
) -> None:
    script = Script()
    with pytest.raises(BadInputError):
        await connect(script).create(model, {})
    assert script.requests == []


async def test_rate_limit_headers_are_kept(connect: Callable[..., ReplicateClient]) -> None:
    client = connect(
        Script(ok(prediction(), headers={"ratelimit-remaining": "41", "ratelimit-reset": "2"}))
    )
    await client.get("p1")
    assert client.rate_limit == RateLimit(remaining=41, reset=2.0)


# --------------------------------------------------------------------------------------------
# Retries


async def test_429_waits_as_long_as_retry_after_says(
    connect: Callable[..., ReplicateClient], sleep: FakeSleep
) -> None:
    limited = httpx.Response(429, headers={"Retry-After": "7", "ratelimit-reset": "1"})
    script = Script(limited, ok(prediction()))
    assert (await connect(script).get("p1")).id == "p1"
    assert sleep.delays == [7.0]
    assert len(script.requests) == 2


async def test_429_with_only_ratelimit_reset(
    connect: Callable[..., ReplicateClient], sleep: FakeSleep
) -> None:
    script = Script(httpx.Response(429, headers={"ratelimit-reset": "3"}), ok(prediction()))
    await connect(script).get("p1")
    assert sleep.delays == [3.0]


async def test_429_waits_are_capped_and_bounded(
    connect: Callable[..., ReplicateClient], sleep: FakeSleep
) -> None:
    storm = [httpx.Response(429, headers={"Retry-After": "3600"}) for _ in range(4)]
    client = connect(Script(*storm), max_rate_limit_retries=3, max_retry_after=20.0)
    with pytest.raises(ProviderError, match="rate limited") as caught:
        await client.get("p1")
    assert type(caught.value) is ProviderThrottledError and caught.value.retryable
    assert sleep.delays == [20.0, 20.0, 20.0]


async def test_5xx_is_retried_with_exponential_backoff(
    connect: Callable[..., ReplicateClient], sleep: FakeSleep
) -> None:
    script = Script(httpx.Response(502), httpx.Response(503), ok(prediction()))
    await connect(script, backoff_base=0.5).get("p1")
    assert sleep.delays == [0.5, 1.0]


async def test_backoff_has_jitter(
    connect: Callable[..., ReplicateClient], sleep: FakeSleep
) -> None:
    script = Script(httpx.Response(500), httpx.Response(500), ok(prediction()))
    await connect(script, backoff_base=1.0, jitter=lambda: 0.0).get("p1")
    assert sleep.delays == [0.5, 1.0]  # never less than half the step


async def test_transport_error_is_retried(
    connect: Callable[..., ReplicateClient], sleep: FakeSleep
) -> None:
    request = httpx.Request("GET", f"{BASE}/v1/predictions/p1")
    script = Script(httpx.ConnectError("connection refused", request=request), ok(prediction()))
    assert (await connect(script).get("p1")).status == "processing"
    assert len(sleep.delays) == 1


async def test_malformed_body_is_retried(
    connect: Callable[..., ReplicateClient], sleep: FakeSleep
) -> None:
    script = Script(
        httpx.Response(200, content=b'{"id": "p1", "status": "proc'),
        ok({"hello": "world"}),
        ok(prediction()),
    )
    assert (await connect(script).get("p1")).id == "p1"
    assert len(sleep.delays) == 2


async def test_retries_run_out(connect: Callable[..., ReplicateClient], sleep: FakeSleep) -> None:
    client = connect(Script(*(httpx.Response(503) for _ in range(4))), max_retries=3)
    with pytest.raises(ProviderError, match=r"HTTP 503.*gave up") as caught:
        await client.get("p1")
    assert type(caught.value) is ProviderError
    assert caught.value.to_application_error().non_retryable is False
    assert len(sleep.delays) == 3


# --------------------------------------------------------------------------------------------
# Errors that are not retried


async def test_problem_document_is_a_non_retryable_rejection(
    connect: Callable[..., ReplicateClient], sleep: FakeSleep
) -> None:
    detail = "- input.duration: Must be less than or equal to 10"
    script = Script(problem(422, "Input validation failed", detail))
    with pytest.raises(ProviderRejectedError) as caught:
        await connect(script).create("acme/video", {"duration": 99})
    error = caught.value
    assert (error.status_code, error.detail, error.retryable) == (422, detail, False)
    assert detail in str(error) and "Input validation failed" in str(error)
    application = error.to_application_error()
    assert application.non_retryable and application.type == "ProviderRejectedError"
    assert sleep.delays == [] and len(script.requests) == 1


async def test_a_rejected_prompt_is_a_refusal(connect: Callable[..., ReplicateClient]) -> None:
    script = Script(problem(400, "Bad request", "The prompt was flagged by moderation"))
    with pytest.raises(ProviderRefusedError, match="moderation"):
        await connect(script).create("acme/video", {"prompt": "x"})


async def test_unknown_prediction_means_a_new_one(connect: Callable[..., ReplicateClient]) -> None:
    script = Script(problem(404, "Not found", "The requested resource could not be found"))
    with pytest.raises(PredictionFailedError, match="p1 not found"):
        await connect(script).get("p1")


@pytest.mark.parametrize(
    "error",
    [
        "Your input was flagged as sensitive. Please try again with different inputs. (E005)",
        "NSFW content detected",
        "Prompt rejected by the safety checker",
        "This request violates our content policy",
        {"detail": "Output blocked by content moderation"},
    ],
)
async def test_failed_for_content_is_a_refusal(
    connect: Callable[..., ReplicateClient], error: Any
) -> None:
    script = Script(ok(prediction("processing")), ok(prediction("failed", error=error)))
    with pytest.raises(ProviderRefusedError) as caught:
        await connect(script).follow("p1")
    assert caught.value.to_application_error().non_retryable


@pytest.mark.parametrize(
    ("status", "error"),
    [
        ("failed", "CUDA error: out of memory"),
        ("failed", None),
        ("canceled", None),
        ("aborted", "Prediction was aborted"),
    ],
)
async def test_other_endings_are_failed_predictions(
    connect: Callable[..., ReplicateClient], status: str, error: str | None
) -> None:
    script = Script(ok(prediction(status, error=error)))
    with pytest.raises(PredictionFailedError, match=error or status) as caught:
        await connect(script).follow("p1")
    assert type(caught.value) is PredictionFailedError
    assert not caught.value.to_application_error().non_retryable


# --------------------------------------------------------------------------------------------
# The clip provider


async def test_submit_sends_the_job(
    connect: Callable[..., ReplicateClient], tmp_path: Path
) -> None:
    image = tmp_path / "reference.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
    script = Script(ok(prediction("starting", id="abc123"), 201))
    provider = ReplicateClipProvider(connect(script), cancel_after="15m")

    assert await provider.submit(clip_job(tmp_path, image=image)) == "abc123"

    request = script.requests[0]
    assert request.url.path == "/v1/models/acme/video/predictions"
    assert request.headers["Cancel-After"] == "15m"
    sent = json.loads(request.content)["input"]
    assert sent["image"] == "data:image/png;base64," + base64.b64encode(image.read_bytes()).decode()
    assert {k: v for k, v in sent.items() if k != "image"} == {
        "prompt": "A lighthouse at dusk\n\nSCENE: waves",
        "seed": 7,
        "duration": 3,
        "aspect_ratio": "9:16",
    }


def test_default_input_shapes(tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * (5 * 1024 * 1024))
    wide = default_clip_input(
        clip_job(tmp_path, platform=PLATFORMS[Platform.youtube], duration=0.4, image=big)
    )
    assert wide == {"prompt": wide["prompt"], "seed": 7, "duration": 1, "aspect_ratio": "16:9"}
    assert default_clip_input(clip_job(tmp_path, duration=5.0))["duration"] == 5


async def test_wait_reports_progress_then_downloads(
    connect: Callable[..., ReplicateClient], sleep: FakeSleep, tmp_path: Path
) -> None:
    video = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40
    done = prediction("succeeded", output=[VIDEO_URL], metrics={"predict_time": 12.5})
    script = Script(
        ok(prediction("starting")),
        ok(prediction("processing", logs="Loading weights")),
        ok(prediction("processing", logs=" 30%|███ | 3/10 [00:03<00:07]")),
        # A second bar starts from zero: the reported progress must not go back.
        ok(prediction("processing", logs="100%|█| 10/10\n 10%|█ | 1/10 [00:01<00:09]")),
        ok(prediction("processing", logs=" 80%|████████ | 8/10 [00:08<00:02]")),
        ok(done),
        httpx.Response(200, content=video),
    )
    reports: list[tuple[ClipStatus, float]] = []
    provider = ReplicateClipProvider(connect(script, poll_interval=2.0))

    output = await provider.wait("p1", clip_job(tmp_path), lambda s, p: reports.append((s, p)))

    assert reports[:5] == [
        (ClipStatus.queued, 0.0),
        (ClipStatus.processing, 0.0),
        (ClipStatus.rendering, 30.0),
        (ClipStatus.rendering, 30.0),
        (ClipStatus.rendering, 80.0),
    ]
    assert set(reports[5:]) == {(ClipStatus.rendering, 100.0)}
    assert sleep.delays == [2.0] * 5
    assert output.path == tmp_path / "p1.mp4" and output.path.read_bytes() == video
    assert output.predict_time == 12.5
    assert [p.name for p in tmp_path.iterdir()] == ["p1.mp4"]  # no .part left behind
    assert [r.url.path for r in script.requests[:-1]] == ["/v1/predictions/p1"] * 6


async def test_a_large_output_streams_to_disk_in_chunks(
    connect: Callable[..., ReplicateClient], tmp_path: Path
) -> None:
    piece, count = 64 * 1024, 80  # 5 MiB
    expected = hashlib.sha256()

    def pieces() -> Iterator[bytes]:
        for index in range(count):
            chunk = bytes([index % 251]) * piece
            expected.update(chunk)
            yield chunk

    async def body() -> AsyncIterator[bytes]:
        for chunk in pieces():
            yield chunk

    script = Script(lambda request: httpx.Response(200, content=body()))
    client = connect(script, chunk_size=256 * 1024)
    sizes: list[int] = []
    dest = tmp_path / "big.mp4"

    tracemalloc.start()
    try:
        written = await client.download(VIDEO_URL, dest, sizes.append)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert written == piece * count == dest.stat().st_size
    assert len(sizes) == 20 and max(sizes) <= 256 * 1024
    assert hashlib.sha256(dest.read_bytes()).digest() == expected.digest()
    assert peak < 2 * 1024 * 1024, f"peak {peak} bytes: the body was held in memory"


async def test_download_retries_and_reports_a_vanished_output(
    connect: Callable[..., ReplicateClient], sleep: FakeSleep, tmp_path: Path
) -> None:
    script = Script(httpx.Response(503), httpx.Response(200, content=b"ok"), httpx.Response(404))
    client = connect(script)
    assert await client.download(VIDEO_URL, tmp_path / "a.mp4") == 2
    assert len(sleep.delays) == 1
    with pytest.raises(PredictionFailedError, match="gone"):
        await client.download(VIDEO_URL, tmp_path / "b.mp4")
    assert not (tmp_path / "b.mp4").exists()


async def test_a_download_that_keeps_failing_leaves_no_partial_file(
    connect: Callable[..., ReplicateClient], tmp_path: Path
) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b"half a video"
        raise httpx.ReadError("connection reset")

    script = Script(*(lambda request: httpx.Response(200, content=broken()) for _ in range(3)))
    with pytest.raises(ProviderError, match="ReadError"):
        await connect(script, max_retries=2).download(VIDEO_URL, tmp_path / "a.mp4")
    assert list(tmp_path.iterdir()) == []


async def test_download_of_a_data_uri(
    connect: Callable[..., ReplicateClient], tmp_path: Path
) -> None:
    client = connect(Script())
    uri = "data:video/mp4;base64," + base64.b64encode(b"tiny video").decode()
    assert await client.download(uri, tmp_path / "a.mp4") == 10
    assert (tmp_path / "a.mp4").read_bytes() == b"tiny video"
    with pytest.raises(PredictionFailedError, match="not a valid data URI"):
        await client.download("data:video/mp4;base64,@@@", tmp_path / "b.mp4")


async def test_the_token_goes_to_the_api_only(
    connect: Callable[..., ReplicateClient], tmp_path: Path
) -> None:
    script = Script(httpx.Response(200, content=b"a"), httpx.Response(200, content=b"b"))
    client = connect(script)
    await client.download(VIDEO_URL, tmp_path / "cdn.mp4")
    await client.download(f"{BASE}/v1/files/f1/download", tmp_path / "api.mp4")
    cdn, api = script.requests
    assert "Authorization" not in cdn.headers
    assert api.headers["Authorization"] == f"Bearer {TOKEN}"


async def test_cancel_hits_the_cancel_endpoint_and_never_raises(
    connect: Callable[..., ReplicateClient], caplog: pytest.LogCaptureFixture
) -> None:
    script = Script(ok(prediction("canceled")), *(httpx.Response(500) for _ in range(3)))
    provider = ReplicateClipProvider(connect(script, max_retries=2))
    await provider.cancel("p1", "owner/model")
    await provider.cancel("p2", "owner/model")  # the service is down: logged, not raised
    assert [(r.method, r.url.path) for r in script.requests[:2]] == [
        ("POST", "/v1/predictions/p1/cancel"),
        ("POST", "/v1/predictions/p2/cancel"),
    ]
    assert "could not cancel Replicate prediction p2" in caplog.text


async def test_the_image_provider_renders_a_storyboard(
    connect: Callable[..., ReplicateClient], tmp_path: Path
) -> None:
    script = Script(
        ok(prediction("starting", id="img1"), 201),
        ok(prediction("succeeded", id="img1", output=["https://replicate.delivery/i/out-0.png"])),
        httpx.Response(200, content=b"\x89PNG image"),
    )
    job = ImageJob("g1", 3, "A lighthouse", PLATFORMS[Platform.youtube], "acme/image", 5, tmp_path)
    path = await ReplicateImageProvider(connect(script)).render(job)
    assert path == tmp_path / "storyboard-3.png" and path.read_bytes() == b"\x89PNG image"
    assert json.loads(script.requests[0].content) == {
        "input": {"prompt": "A lighthouse", "seed": 5, "aspect_ratio": "16:9"}
    }


async def test_the_token_never_reaches_the_logs(
    connect: Callable[..., ReplicateClient], caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)
    request = httpx.Request("GET", f"{BASE}/v1/predictions/p1")
    script = Script(
        httpx.Response(429, headers={"Retry-After": "1"}),
        httpx.ReadTimeout("timed out", request=request),
        httpx.Response(500),
        ok(prediction("succeeded", output=VIDEO_URL)),
        httpx.Response(200, content=b"video"),
        problem(401, "Unauthenticated", "You did not pass a valid authentication token"),
        *(httpx.Response(502) for _ in range(6)),
    )
    client = connect(script, max_retries=2)
    provider = ReplicateClipProvider(client)
    errors: list[Exception] = []

    await provider.wait("p1", clip_job(tmp_path), lambda s, p: None)
    for attempt in (provider.submit(clip_job(tmp_path)), client.get("p1")):
        try:
            await attempt
        except ProviderError as error:
            errors.append(error)
    await provider.cancel("p1", "owner/model")

    assert len(errors) == 2 and caplog.records
    assert all(TOKEN not in record.getMessage() for record in caplog.records)
    assert all(TOKEN not in str(error) for error in errors)
    assert TOKEN not in repr(client)
