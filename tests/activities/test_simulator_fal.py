"""The simulator's fal queue protocol, driven by FalClipProvider over real HTTP, with signed
webhooks delivered to a local receiver and checked by FalWebhookVerifier."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
import uvicorn

from activities.providers.base import ClipJob
from activities.providers.fal import FalClipProvider
from activities.providers.fal_api import FalClient
from activities.simulator import Simulator, SimulatorConfig, create_app
from storyreel.contracts import PLATFORMS, ClipStatus, Platform, PredictionPhase
from storyreel.errors import PredictionFailedError, ProviderRefusedError, ProviderRejectedError
from storyreel.webhooks.fal import FalWebhookVerifier

MODEL = "fal-ai/kling-video/v2/master/text-to-video"
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def until(check: Callable[[], Awaitable[Any]], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := await check()):
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)
    return result


@asynccontextmanager
async def serving(app: Any, lifespan: Literal["on", "off"] = "on") -> AsyncIterator[str]:
    """A real uvicorn server on a free 127.0.0.1 port in this event loop, always stopped."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", ws="none", lifespan=lifespan))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:

        async def started() -> bool:
            assert not task.done(), "the server stopped while starting"
            return server.started

        await until(started)
        yield url
    finally:
        server.should_exit = True
        await task
        sock.close()


class Receiver:
    """Our end of a webhook: answers 500 to the first ``fail_first`` deliveries, then keeps
    each one (lower-cased headers and the raw body)."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.attempts = 0
        self.deliveries: list[tuple[dict[str, str], bytes]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        self.attempts += 1
        status = 500 if self.attempts <= self.fail_first else 200
        if status == 200:
            headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
            self.deliveries.append((headers, body))
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})


class Sim:
    def __init__(self, url: str, engine: Simulator, receiver: Receiver, hook: str) -> None:
        self.url, self.engine, self.receiver, self.hook = url, engine, receiver, hook

    def client(self, key: str | None = "sim-key", **options: Any) -> FalClient:
        options = {"poll_interval": 0.05, "backoff_base": 0.01, **options}
        return FalClient(f"{self.url}/fal", key, **options)

    async def delivered(self, count: int = 1) -> list[tuple[dict[str, str], bytes]]:
        async def arrived() -> bool:
            return len(self.receiver.deliveries) >= count

        await until(arrived)
        return self.receiver.deliveries


@asynccontextmanager
async def simulator(receiver: Receiver | None = None, **knobs: Any) -> AsyncIterator[Sim]:
    config = SimulatorConfig(**{"latency": 0.3, "render": False, "seed": 7, **knobs})
    app = create_app(config)
    receiver = receiver or Receiver()
    async with serving(app) as url, serving(receiver, lifespan="off") as hook_url:
        app.state.fal.backoff = 0.05  # deliveries retry quickly here
        yield Sim(url, app.state.simulator, receiver, f"{hook_url}/v1/webhooks/fal?clip=1")


@pytest.fixture
async def verifier_of() -> AsyncIterator[Callable[[Sim], FalWebhookVerifier]]:
    made: list[FalWebhookVerifier] = []

    def make(sim: Sim) -> FalWebhookVerifier:
        made.append(FalWebhookVerifier(f"{sim.url}/fal/.well-known/jwks.json"))
        return made[-1]

    yield make
    for verifier in made:
        await verifier.aclose()


def clip_job(tmp_path: Path, prompt: str = "A lighthouse at dusk") -> ClipJob:
    platform = PLATFORMS[Platform.tiktok]
    return ClipJob("g1", 1, prompt, "dusk", 2.0, platform, MODEL, 7, None, tmp_path)


async def test_a_clip_runs_end_to_end_with_a_verified_webhook(
    tmp_path: Path, verifier_of: Callable[[Sim], FalWebhookVerifier]
) -> None:
    # The receiver fails the first delivery: the simulator must deliver again.
    async with simulator(Receiver(fail_first=1)) as sim, sim.client() as client:
        provider = FalClipProvider(client)
        request_id = await provider.submit(clip_job(tmp_path), sim.hook)
        reports: list[tuple[ClipStatus, float]] = []
        output = await provider.wait(request_id, clip_job(tmp_path), lambda *r: reports.append(r))
        assert output.path.parent == tmp_path
        assert b"ftyp" in output.path.read_bytes()[:16]
        assert output.predict_time is not None and output.predict_time > 0
        assert ClipStatus.rendering in {status for status, _ in reports}
        assert (await provider.check(request_id, MODEL)).phase is PredictionPhase.succeeded

        ((headers, body),) = await sim.delivered()
        assert sim.receiver.attempts == 2
        verifier = verifier_of(sim)
        assert await verifier.verify(headers, body) == request_id
        update = verifier.parse(body)
        assert (update.prediction_id, update.phase) == (request_id, PredictionPhase.succeeded)
        inputs = sim.engine.get(request_id)
        assert inputs is not None
        assert inputs.input == {"prompt": "A lighthouse at dusk", "duration": "2"} | {
            "aspect_ratio": "9:16",
            "seed": 7,
        }


@pytest.mark.parametrize(
    ("trigger", "raised", "phase"),
    [
        ("[refuse]", ProviderRefusedError, PredictionPhase.refused),
        ("[fail]", PredictionFailedError, PredictionPhase.failed),
    ],
)
async def test_refusals_and_failures_reach_wait_and_the_webhook(
    tmp_path: Path, verifier_of, trigger: str, raised: type[Exception], phase: PredictionPhase
) -> None:
    async with simulator() as sim, sim.client() as client:
        provider = FalClipProvider(client)
        job = clip_job(tmp_path, f"A lighthouse {trigger}")
        request_id = await provider.submit(job, sim.hook)
        with pytest.raises(raised):
            await provider.wait(request_id, job, lambda *_: None)
        ((headers, body),) = await sim.delivered()
        verifier = verifier_of(sim)
        assert await verifier.verify(headers, body) == request_id
        update = verifier.parse(body)
        assert update.phase is phase
        assert update.error


async def test_a_cancelled_request_stops_and_is_not_delivered(tmp_path: Path) -> None:
    async with simulator(latency=30) as sim, sim.client() as client:
        provider = FalClipProvider(client)
        job = clip_job(tmp_path)
        request_id = await provider.submit(job, sim.hook)

        async def running() -> bool:
            return (await provider.check(request_id, MODEL)).phase is PredictionPhase.running

        await until(running)
        await provider.cancel(request_id, MODEL)
        prediction = sim.engine.get(request_id)
        assert prediction is not None and prediction.canceled
        assert await client.cancel(MODEL, request_id) == "ALREADY_COMPLETED"
        with pytest.raises(PredictionFailedError, match="cancelled"):
            await client.result(MODEL, request_id)
        await asyncio.sleep(0.3)
        assert sim.receiver.attempts == 0


async def test_faults_and_rate_limits_are_ridden_out(tmp_path: Path) -> None:
    knobs: dict[str, Any] = {
        "error_rate": 0.3,
        "malformed_rate": 0.2,
        "rate_limit": 1,
        "rate_window": 1.0,
    }
    async with simulator(**knobs) as sim, sim.client(max_retries=20) as client:
        provider = FalClipProvider(client)
        ids = [await provider.submit(clip_job(tmp_path, f"scene {n}")) for n in range(2)]
        for n, request_id in enumerate(ids):
            workdir = tmp_path / str(n)
            workdir.mkdir()
            job = clip_job(workdir, f"scene {n}")
            assert (await provider.wait(request_id, job, lambda *_: None)).path.exists()
        counts = sim.engine.counts
        assert counts.rate_limited >= 1
        assert counts.server_errors + counts.malformed >= 1


async def test_a_missing_key_is_rejected(tmp_path: Path) -> None:
    async with simulator() as sim, sim.client(key=None) as client:
        with pytest.raises(ProviderRejectedError) as raised:
            await FalClipProvider(client).submit(clip_job(tmp_path))
        assert raised.value.status_code == 401


async def test_the_simulator_answers_the_documented_shapes(tmp_path: Path) -> None:
    async with simulator() as sim, sim.client() as client:
        submission = await client.submit(MODEL, {"prompt": "x", "duration": "2"})
        app_url = f"{sim.url}/fal/fal-ai/kling-video/requests/{submission.request_id}"
        assert submission.status_url == f"{app_url}/status"
        assert submission.cancel_url == f"{app_url}/cancel"
        status = await client.status(MODEL, submission.request_id)
        assert status.request_id == submission.request_id
        # Queued briefly (with a position), then in progress: never a position while running.
        assert (status.status.value, status.queue_position) in {
            ("IN_QUEUE", 0),
            ("IN_PROGRESS", None),
        }
        async with httpx.AsyncClient() as http:
            keys = (await http.get(f"{sim.url}/fal/.well-known/jwks.json")).json()["keys"]
        assert [(key["kty"], key["crv"]) for key in keys] == [("OKP", "Ed25519")]


async def test_an_image_to_video_endpoint_gets_the_image_and_makes_a_video(tmp_path: Path) -> None:
    board = tmp_path / "board.png"
    board.write_bytes(b"\x89PNG\r\n\x1a\n" + b"p" * 64)
    model = "fal-ai/kling-video/v2/master/image-to-video"
    job = ClipJob("g1", 1, "A lighthouse", "dusk", 2.0, PLATFORMS[Platform.tiktok], model, 7,
                  board, tmp_path)  # fmt: skip
    async with simulator() as sim, sim.client() as client:
        provider = FalClipProvider(client)
        request_id = await provider.submit(job)
        output = await provider.wait(request_id, job, lambda *_: None)
        assert output.path.suffix == ".mp4"
        assert b"ftyp" in output.path.read_bytes()[:16]
        prediction = sim.engine.get(request_id)
        assert prediction is not None
        assert prediction.input["image_url"].startswith("data:image/png;base64,")
