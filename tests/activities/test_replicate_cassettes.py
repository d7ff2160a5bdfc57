"""The Replicate adapter replayed against real recorded Replicate traffic (VCR cassettes).

The cassettes live in ``../shared/fixtures/replicate-cassettes`` next to the repository; each
recorded request is answered (matched on method and path, in recorded order) with its recorded
status, headers and body, so the client parses exactly what the live service sent.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from activities.providers.base import ClipJob
from activities.providers.replicate import ReplicateClipProvider
from activities.providers.replicate_api import (
    Prediction,
    PredictionStatus,
    ProviderRejectedError,
    RateLimit,
    ReplicateClient,
)
from storyreel.contracts import PLATFORMS, ClipStatus, Platform
from storyreel.errors import PredictionFailedError

CASSETTES = Path(__file__).resolve().parents[3] / "shared/fixtures/replicate-cassettes"
TOKEN = "r8_cassette-token"
SDXL = "39ed52f2a78e934b3ba6e2a89f5b1c712de7dfea535525255b1aa35c5565e08b"
CORGI = {"prompt": "a studio photo of a rainbow colored corgi", "width": 512, "height": 512}
# Hop-by-hop and length headers describe the recorded transfer, not the body replayed here.
DROPPED_HEADERS = {"content-length", "transfer-encoding", "connection"}
EXPECTED_STATUS = {
    PredictionStatus.starting: {ClipStatus.queued},
    PredictionStatus.processing: {ClipStatus.processing, ClipStatus.rendering},
    PredictionStatus.succeeded: {ClipStatus.complete},
    PredictionStatus.canceled: {ClipStatus.failed},
}


@dataclass
class Interaction:
    method: str
    path: str
    request_body: Any
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:  # gzip-compressed model pages: not predictions
            return None


def cassette_dir() -> Path:
    if not CASSETTES.is_dir() or not any(CASSETTES.glob("*.yaml")):
        missing = f"Replicate cassettes not found in {CASSETTES} (../shared next to the repo)"
        # CI always has ../shared beside the clone: there a missing cassette is a failure.
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    return CASSETTES


@cache
def load(name: str) -> tuple[Interaction, ...]:
    """A cassette in either VCR layout (``status_code``/``content`` or ``status``/``body``)."""
    document = yaml.load((cassette_dir() / name).read_text("utf-8"), Loader=yaml.CSafeLoader)
    interactions = []
    for recorded in document["interactions"]:
        request, response = recorded["request"], recorded["response"]
        raw = response["content"] if "content" in response else response["body"]["string"]
        status = response.get("status_code") or response["status"]["code"]
        body = raw if isinstance(raw, bytes) else raw.encode("utf-8")
        headers = [
            (name, value)
            for name, values in response["headers"].items()
            for value in values
            if name.lower() not in DROPPED_HEADERS
            # Text bodies were stored decoded; only raw bytes still carry their encoding.
            and (isinstance(raw, bytes) or name.lower() != "content-encoding")
        ]
        interactions.append(
            Interaction(
                method=request["method"],
                path=httpx.URL(request["uri"]).path,
                request_body=json.loads(request["body"]) if request.get("body") else None,
                status=status,
                headers=headers,
                body=body,
            )
        )
    return tuple(interactions)


class Replay:
    """An ``httpx.MockTransport`` handler answering each request with its recorded answer."""

    def __init__(self, name: str) -> None:
        self.unused = list(load(name))
        self.requests: list[httpx.Request] = []
        self.files: dict[str, bytes] = {}
        """Bodies for other hosts (output files), which the cassettes did not record."""

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.host in self.files:
            return httpx.Response(200, content=self.files[request.url.host])
        candidates = [
            i for i in self.unused if (i.method, i.path) == (request.method, request.url.path)
        ]
        if not candidates:
            raise AssertionError(f"nothing recorded for {request.method} {request.url.path}")
        sent = json.loads(request.content) if request.content else None
        # Concurrent creates share a path: prefer the one recorded with the same body.
        chosen = next((i for i in candidates if i.request_body == sent), candidates[0])
        self.unused.remove(chosen)
        return httpx.Response(chosen.status, headers=chosen.headers, content=chosen.body)


def recorded_predictions(name: str) -> Iterator[dict[str, Any]]:
    """Every prediction object in a cassette's answers, with those nested in model pages."""
    for interaction in load(name):
        body = interaction.json()
        if not isinstance(body, dict):
            continue
        if "status" in body and "id" in body:
            yield body
        if isinstance(body.get("default_example"), dict):
            yield body["default_example"]


@pytest.fixture
async def replay() -> AsyncIterator[Callable[[str], tuple[ReplicateClient, Replay]]]:
    clients: list[ReplicateClient] = []

    async def no_sleep(_delay: float) -> None:
        await asyncio.sleep(0)

    def make(name: str) -> tuple[ReplicateClient, Replay]:
        handler = Replay(name)
        transport = httpx.MockTransport(handler)
        client = ReplicateClient(api_token=TOKEN, transport=transport, sleep=no_sleep)
        clients.append(client)
        return client, handler

    yield make
    for client in clients:
        await client.aclose()


def test_the_cassettes_are_there() -> None:
    names = {path.name for path in cassette_dir().glob("*.yaml")}
    assert {
        "models_predictions_create.yaml",
        "predictions_cancel.yaml",
        "predictions_create.yaml",
        "predictions_create_by_model.yaml",
        "predictions_create_prefer_wait.yaml",
        "predictions_get.yaml",
        "run_concurrently.yaml",
        "run_invalid_token.yaml",
    } <= names


@pytest.mark.parametrize("name", sorted(path.name for path in CASSETTES.glob("*.yaml")))
def test_every_recorded_prediction_parses(name: str) -> None:
    for recorded in recorded_predictions(name):
        parsed = Prediction.model_validate(recorded)
        assert parsed.id == recorded["id"]
        assert parsed.status.value == recorded["status"]
        assert parsed.clip_status in EXPECTED_STATUS[parsed.status]
        if parsed.status is PredictionStatus.processing:
            rendering = parsed.progress is not None
            assert (parsed.clip_status is ClipStatus.rendering) == rendering
        if parsed.status is PredictionStatus.succeeded:
            assert parsed.output_url().startswith("https://")
            assert parsed.predict_time is not None and parsed.predict_time > 0


def test_the_cassettes_hold_every_status_we_map() -> None:
    seen = {
        Prediction.model_validate(recorded).status
        for path in CASSETTES.glob("*.yaml")
        for recorded in recorded_predictions(path.name)
    }
    assert seen == set(EXPECTED_STATUS)


async def test_get_reads_progress_metrics_and_output(replay: Any) -> None:
    client, handler = replay("predictions_get.yaml")
    got = await client.get("vgcm4plb7tgzlyznry5d5jkgvu")
    assert got.status is PredictionStatus.succeeded and got.clip_status is ClipStatus.complete
    assert got.progress == 100.0
    assert got.predict_time == pytest.approx(3.804328)
    assert got.output_url().endswith("/out-0.png")
    assert got.completed_at is not None and got.started_at is not None
    assert handler.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert client.rate_limit == RateLimit(remaining=59999, reset=1.0)

    # The same logs cut before the last bars: progress is the last tqdm line's.
    logs = got.logs or ""
    cut = got.model_copy(update={"logs": logs[: logs.index("100%")]})
    assert cut.progress == 96.0


@pytest.mark.parametrize(
    ("name", "model", "prompt"),
    [
        ("predictions_create_by_model.yaml", "meta/meta-llama-3-8b-instruct", "write a haiku"),
        ("models_predictions_create.yaml", "meta/llama-2-70b-chat", "Please write a haiku"),
    ],
)
async def test_create_by_model_uses_the_models_endpoint(
    replay: Any, name: str, model: str, prompt: str
) -> None:
    client, handler = replay(name)
    recorded = load(name)[0].request_body
    created = await client.create(model, recorded["input"])
    assert created.status is PredictionStatus.starting
    assert created.clip_status is ClipStatus.queued
    assert recorded["input"]["prompt"].startswith(prompt)
    request = handler.requests[0]
    assert (request.method, request.url.path) == ("POST", f"/v1/models/{model}/predictions")
    assert json.loads(request.content) == {"input": recorded["input"]}
    assert client.rate_limit == RateLimit(remaining=599, reset=1.0)


async def test_create_with_a_version_uses_predictions(replay: Any) -> None:
    client, handler = replay("predictions_create.yaml")
    corgi = CORGI | {"seed": 42069}
    first = await client.create(f"stability-ai/sdxl:{SDXL}", corgi)
    second = await client.create(SDXL, corgi)
    assert (first.id, second.id) == ("vgcm4plb7tgzlyznry5d5jkgvu", "vme6tftbgoggoxnjiwkzr6zrpa")
    assert first.version == SDXL and first.input == corgi
    for request in handler.requests:
        assert request.url.path == "/v1/predictions"
        assert json.loads(request.content) == {"version": SDXL, "input": corgi}


async def test_cancel_yields_canceled(replay: Any) -> None:
    client, handler = replay("predictions_cancel.yaml")
    created = await client.create(SDXL, CORGI | {"seed": 42069})
    canceled = await client.cancel(created.id)
    assert handler.requests[-1].url.path == f"/v1/predictions/{created.id}/cancel"
    assert canceled.status is PredictionStatus.canceled
    assert canceled.clip_status is ClipStatus.failed
    assert canceled.logs is None and canceled.predict_time == pytest.approx(0.128148)
    with pytest.raises(PredictionFailedError, match="canceled"):
        canceled.raise_for_failure()


async def test_prefer_wait_answer_parses_while_still_processing(
    replay: Any, tmp_path: Path
) -> None:
    client, handler = replay("predictions_create_prefer_wait.yaml")
    created = await client.create(SDXL, CORGI | {"seed": 42069}, wait=60)
    assert handler.requests[0].headers["Prefer"] == "wait=60"
    assert created.status is PredictionStatus.processing
    assert created.urls is not None and "stream" in created.urls
    # Sync mode hands the file over inline, as a data URI.
    size = await client.download(created.output_url(), tmp_path / "out.png")
    png = (tmp_path / "out.png").read_bytes()
    assert size == len(png) > 1000 and png.startswith(b"\x89PNG\r\n\x1a\n")


async def test_an_invalid_token_is_rejected_for_good(replay: Any) -> None:
    client, _ = replay("run_invalid_token.yaml")
    with pytest.raises(ProviderRejectedError) as caught:
        await client.create(load("run_invalid_token.yaml")[0].request_body["version"], {})
    error = caught.value
    assert "You did not pass a valid authentication token" in str(error)
    assert error.status_code == 401 and not error.retryable
    assert error.to_application_error().non_retryable


async def test_concurrent_clips_follow_their_predictions_to_the_end(
    replay: Any, tmp_path: Path
) -> None:
    client, handler = replay("run_concurrently.yaml")
    handler.files["replicate.delivery"] = b"frames"
    teams = ["two", "six", "eight", "four"]
    prompts = [f"A chariot pulled by a team of {n} rainbow unicorns" for n in teams]
    created = await asyncio.gather(*(client.create(SDXL, {"prompt": p}) for p in prompts))
    provider = ReplicateClipProvider(client)
    reports: dict[str, list[tuple[ClipStatus, float]]] = {p.id: [] for p in created}

    async def follow(prediction: Prediction) -> tuple[str, float | None]:
        job = ClipJob("g1", 1, "p", "t", 5.0, PLATFORMS[Platform.youtube], "m", 1, None, tmp_path)
        output = await provider.wait(
            prediction.id, job, lambda s, p: reports[prediction.id].append((s, p))
        )
        assert output.path.read_bytes() == b"frames"
        return prediction.id, output.predict_time

    finished = dict(await asyncio.gather(*(follow(p) for p in created)))

    assert set(finished) == {p.id for p in created} and all(finished.values())
    # Every recorded poll was answered, in its recorded order, and nothing more was asked.
    assert not [i for i in handler.unused if i.path.startswith("/v1/predictions")]
    for trail in reports.values():
        percents = [percent for _, percent in trail]
        assert percents == sorted(percents), "progress went backwards"
        assert any(0 < percent < 100 for percent in percents)
        assert trail[0][0] is ClipStatus.queued
        assert (ClipStatus.rendering, 100.0) in trail
