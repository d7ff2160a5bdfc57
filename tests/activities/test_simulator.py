"""The Replicate simulator speaks Replicate's protocol: the official client runs on it unchanged,
and each knob produces the fault it names."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from replicate.client import Client
from replicate.prediction import Prediction

from activities.media import ffmpeg
from activities.simulator import REFUSAL, Simulator, SimulatorConfig, create_app
from storyreel.stack import free_port

AUTH = {"Authorization": "Bearer test-token"}
TERMINAL = {"succeeded", "failed", "canceled", "aborted"}
PROGRESS = re.compile(r"^\s*(\d+)%\|.+?\|\s*(\d+)/(\d+)", re.MULTILINE)


def body(response: httpx.Response) -> dict[str, Any]:
    data: dict[str, Any] = response.json()
    return data


async def until(check: Callable[[], Awaitable[Any]], timeout: float = 20.0) -> Any:
    """Poll ``check`` until it returns something truthy; fail after a generous deadline."""
    deadline = time.monotonic() + timeout
    while True:
        if result := await check():
            return result
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


class Sim:
    """A running simulator: its base URL, an authenticated client, and the engine behind it."""

    def __init__(self, url: str, http: httpx.AsyncClient, engine: Simulator) -> None:
        self.url, self.http, self.engine = url, http, engine

    async def create(self, prompt: str, **inputs: Any) -> dict[str, Any]:
        response = await self.http.post(
            "/v1/models/storyreel/sim-video/predictions",
            json={"input": {"prompt": prompt, **inputs}},
        )
        assert response.status_code == 201, response.text
        return body(response)

    async def get(self, prediction_id: str) -> dict[str, Any]:
        response = await self.http.get(f"/v1/predictions/{prediction_id}")
        assert response.status_code == 200, response.text
        return body(response)

    async def finished(self, prediction_id: str) -> dict[str, Any]:
        async def ended() -> dict[str, Any] | None:
            prediction = await self.get(prediction_id)
            return prediction if prediction["status"] in TERMINAL else None

        result: dict[str, Any] = await until(ended)
        return result

    async def log(self) -> dict[str, Any]:
        return body(await self.http.get("/_sim/log"))


@asynccontextmanager
async def running(**knobs: Any) -> AsyncIterator[Sim]:
    """A real uvicorn server on a free 127.0.0.1 port in this event loop, always stopped."""
    config = SimulatorConfig(**{"latency": 0.3, "render": False, "seed": 7, **knobs})
    app = create_app(config)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", ws="none", lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:

        async def started() -> bool:
            assert not task.done(), "the server stopped while starting"
            return server.started

        await until(started)
        async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=30) as http:
            yield Sim(url, http, app.state.simulator)
    finally:
        server.should_exit = True
        await task
        sock.close()


@asynccontextmanager
async def official_client(sim: Sim) -> AsyncIterator[Client]:
    """The official client pointed at the simulator; we hand it a transport so we can close it."""
    with httpx.HTTPTransport() as transport:
        client = Client(api_token="test", base_url=sim.url, transport=transport)
        client.poll_interval = 0.1
        yield client


def fetch(url: str) -> bytes:
    with httpx.Client(timeout=30) as http:
        response = http.get(url)
        response.raise_for_status()
        return response.content


def read_output(output: Any) -> bytes:
    # replicate 1.x wraps https:/data: outputs in FileOutput; our http:// URLs come back as str.
    return output.read() if hasattr(output, "read") else fetch(str(output))


async def test_the_official_client_runs_a_prediction_to_a_real_mp4(tmp_path: Path) -> None:
    async with running(render=True, latency=0.5) as sim, official_client(sim) as client:

        def run() -> tuple[Prediction, bytes]:
            prediction = client.predictions.create(
                model="storyreel/sim-video",
                input={"prompt": "A lighthouse at dusk", "duration": 2, "aspect_ratio": "9:16"},
            )
            assert prediction.status == "starting"
            prediction.wait()
            return prediction, fetch(str(prediction.output))

        prediction, video = await asyncio.to_thread(run)

    assert prediction.status == "succeeded", prediction.error
    assert prediction.progress is not None and prediction.progress.percentage == 1.0
    assert prediction.metrics is not None and prediction.metrics["predict_time"] > 0
    assert prediction.model == "storyreel/sim-video" and len(prediction.version) == 64
    assert video[4:8] == b"ftyp"
    (tmp_path / "clip.mp4").write_bytes(video)
    info = ffmpeg.probe(tmp_path / "clip.mp4")
    assert (info.width, info.height, info.video_codec) == (
        720,
        1280,
        "h264",
    )  # 720p, as the models make
    assert info.duration == pytest.approx(2.0, abs=0.1)


async def test_the_official_client_run_returns_downloadable_outputs(tmp_path: Path) -> None:
    async with running(render=True, latency=0.3) as sim, official_client(sim) as client:

        def run() -> tuple[bytes, bytes, bytes]:
            video = read_output(
                client.run("storyreel/sim-video", input={"prompt": "A harbour", "duration": 1})
            )
            image = read_output(client.run("storyreel/sim-image", input={"prompt": "A fox"}))
            # The ``owner/name:version`` form looks the version up, then creates by version id.
            listed = client.predictions.list().results
            assert [p.model for p in listed] == ["storyreel/sim-image", "storyreel/sim-video"]
            version = listed[1].version
            again = read_output(
                client.run(f"storyreel/sim-video:{version}", input={"prompt": "x", "duration": 1})
            )
            return video, image, again

        video, image, again = await asyncio.to_thread(run)

    assert video[4:8] == b"ftyp" and again[4:8] == b"ftyp"
    assert image.startswith(b"\x89PNG\r\n\x1a\n")
    (tmp_path / "clip.mp4").write_bytes(video)
    info = ffmpeg.probe(tmp_path / "clip.mp4")
    assert (info.width, info.height) == (1280, 720)  # 720p, as the models make
    assert info.duration == pytest.approx(1.0, abs=0.1)


async def test_logs_grow_as_tqdm_lines_and_progress_never_goes_back() -> None:
    async with running(latency=1.0) as sim:
        created = await sim.create("A slow pan over hills")
        seen: list[int] = []

        async def done() -> bool:
            prediction = await sim.get(created["id"])
            steps = [int(match[1]) for match in PROGRESS.finditer(prediction["logs"])]
            if steps:
                seen.append(steps[-1])
            assert steps == sorted(steps)
            return bool(prediction["status"] == "succeeded")

        await until(done)
        final = await sim.get(created["id"])

    assert seen == sorted(seen) and len(set(seen)) >= 3 and seen[-1] == 100
    assert final["logs"].startswith("Using seed: random\nPrompt: A slow pan over hills\n")
    assert "  0%|          | 0/100 [00:00<?, ?it/s]" in final["logs"]
    assert final["output"] == f"{sim.url}/files/{created['id']}.mp4"
    assert final["metrics"]["predict_time"] > 0.5


async def test_missing_or_empty_auth_is_a_401_problem_document() -> None:
    async with running() as sim, httpx.AsyncClient(base_url=sim.url) as anonymous:
        for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": "Token abc"}):
            response = await anonymous.post(
                "/v1/predictions", json={"version": "v", "input": {}}, headers=headers
            )
            assert response.status_code == 401
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json() == {
                "title": "Unauthenticated",
                "detail": "You did not pass a valid authentication token",
                "status": 401,
            }
        assert (await sim.log())["counts"]["creates"] == 0


async def test_bad_bodies_are_422_and_unknown_ids_404_problem_documents() -> None:
    async with running() as sim:
        no_version = await sim.http.post("/v1/predictions", json={"input": {}})
        assert no_version.status_code == 422
        assert no_version.headers["content-type"] == "application/problem+json"
        assert [field["field"] for field in no_version.json()["invalid_fields"]] == ["version"]
        # A model without a stored schema is held to the few inputs the simulator reads.
        bad = await sim.http.post(
            "/v1/predictions", json={"version": "v", "input": {"aspect_ratio": "4:3"}}
        )
        assert bad.status_code == 422
        assert bad.headers["content-type"] == "application/problem+json"
        fields = {field["field"] for field in bad.json()["invalid_fields"]}
        assert fields == {"input.aspect_ratio"}
        assert bad.json()["title"] == "Input validation failed"
        not_json = await sim.http.post(
            "/v1/models/a/b/predictions", content=b"{", headers={"content-type": "application/json"}
        )
        assert not_json.status_code == 422
        missing = await sim.http.get("/v1/predictions/nope")
        assert missing.status_code == 404 and missing.json()["status"] == 404
        cancel = await sim.http.post("/v1/predictions/nope/cancel")
        assert cancel.status_code == 404
        assert (await sim.http.get("/files/nope.mp4")).status_code == 404


async def test_rate_limit_answers_429_with_retry_after_beyond_the_window() -> None:
    async with running(rate_limit=2, latency=30) as sim:
        body = {"input": {"prompt": "p"}}
        path = "/v1/models/storyreel/sim-video/predictions"
        answers = [await sim.http.post(path, json=body) for _ in range(3)]
        assert [answer.status_code for answer in answers] == [201, 201, 429]
        assert [a.headers["ratelimit-remaining"] for a in answers] == ["1", "0", "0"]
        throttled = answers[2]
        assert 1 <= int(throttled.headers["Retry-After"]) <= 60
        assert throttled.headers["ratelimit-reset"] == throttled.headers["Retry-After"]
        assert throttled.json()["title"] == "Request was throttled"
        assert throttled.headers["content-type"] == "application/problem+json"
        log = await sim.log()
        assert log["counts"]["creates"] == 2 and log["counts"]["rate_limited"] == 1


async def test_error_rate_answers_5xx_with_a_json_body_and_creates_nothing() -> None:
    async with running(error_rate=1.0) as sim:
        get = await sim.http.get("/v1/predictions/anything")
        create = await sim.http.post(
            "/v1/models/storyreel/sim-video/predictions", json={"input": {"prompt": "p"}}
        )
        for answer in (get, create):
            assert answer.status_code in {500, 502, 503}
            assert answer.json()["status"] == answer.status_code
        counts = (await sim.log())["counts"]
        assert counts["creates"] == 0 and counts["server_errors"] == 2


async def test_malformed_rate_truncates_get_bodies_and_config_changes_at_runtime() -> None:
    async with running() as sim:
        created = await sim.create("p")
        changed = await sim.http.post("/_sim/config", json={"malformed_rate": 1})
        assert changed.json()["malformed_rate"] == 1.0
        assert (await sim.http.get("/_sim/config")).json()["latency"] == 0.3
        response = await sim.http.get(f"/v1/predictions/{created['id']}")
        assert response.status_code == 200
        with pytest.raises(json.JSONDecodeError):
            json.loads(response.content)
        assert (await sim.log())["counts"]["malformed"] == 1
        rejected = await sim.http.post("/_sim/config", json={"fail_rate": 2})
        assert rejected.status_code == 422


async def test_prompt_triggers_refuse_and_fail_once() -> None:
    async with running() as sim:
        refused = await sim.finished((await sim.create("a scene [refuse]"))["id"])
        assert refused["status"] == "failed" and refused["error"] == REFUSAL
        assert refused["output"] is None
        first = await sim.finished((await sim.create("scene 3 [fail-once]"))["id"])
        second = await sim.finished((await sim.create("scene 3 [fail-once]"))["id"])
        assert (first["status"], second["status"]) == ("failed", "succeeded")
        assert first["error"] and first["error"] != REFUSAL
        statuses = [entry["status"] for entry in (await sim.log())["predictions"]]
        assert statuses == ["failed", "failed", "succeeded"]


async def test_a_hung_prediction_stays_processing() -> None:
    async with running(latency=0.3) as sim:
        hung = await sim.create("a scene [hang]")
        # A prediction created later with the same latency finishing proves the time has passed.
        await sim.finished((await sim.create("a scene"))["id"])
        await sim.finished((await sim.create("another scene"))["id"])
        stuck = await sim.get(hung["id"])
        assert stuck["status"] == "processing" and stuck["completed_at"] is None
        canceled = (await sim.http.post(f"/v1/predictions/{hung['id']}/cancel")).json()
        assert canceled["status"] == "canceled"


def ffmpeg_children() -> list[int]:
    """FFmpeg processes whose parent is this test process (Linux ``/proc``)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid, rest = stat.read_text().split(" (", 1)
        except OSError:
            continue  # the process ended while we looked
        name, _, fields = rest.rpartition(") ")
        if "ffmpeg" in name and int(fields.split()[1]) == os.getpid():
            found.append(int(pid))
    return found


async def test_cancel_stops_the_render_and_is_logged() -> None:
    async with running(render=True, latency=30) as sim:
        created = await sim.create("A long render", duration=10, aspect_ratio="9:16")

        async def processing() -> bool:
            return bool((await sim.get(created["id"]))["status"] == "processing")

        async def rendering() -> bool:
            return bool(ffmpeg_children())

        await until(processing)
        await until(rendering)
        response = await sim.http.post(created["urls"]["cancel"])
        assert response.status_code == 200
        assert response.json()["status"] == "canceled"
        assert (await sim.get(created["id"]))["status"] == "canceled"
        task = sim.engine.get(created["id"]).task  # type: ignore[union-attr]

        async def stopped() -> bool:
            return task is not None and task.done()

        # The task ends only once its FFmpeg has been killed (run_stoppable waits for it).
        await until(stopped, timeout=10)
        assert ffmpeg_children() == []
        log = await sim.log()
        assert log["predictions"][0]["canceled"] is True
        assert log["predictions"][0]["status"] == "canceled"
        assert log["counts"]["cancels"] == 1


async def test_cancel_after_header_ends_a_long_prediction() -> None:
    async with running(latency=30) as sim:
        response = await sim.http.post(
            "/v1/models/storyreel/sim-video/predictions",
            json={"input": {"prompt": "p"}},
            headers={"Cancel-After": "700ms"},
        )
        ended = await sim.finished(response.json()["id"])
        assert ended["status"] == "canceled"
        bad = await sim.http.post(
            "/v1/predictions",
            json={"version": "v", "input": {}},
            headers={"Cancel-After": "soon"},
        )
        assert bad.status_code == 422


async def test_prefer_wait_returns_a_finished_prediction_or_starting_when_out_of_time() -> None:
    async with running(latency=0.3) as sim:
        path = "/v1/models/storyreel/sim-video/predictions"
        done = await sim.http.post(
            path, json={"input": {"prompt": "p"}}, headers={"Prefer": "wait"}
        )
        assert done.status_code == 201 and done.headers["Preference-Applied"] == "wait"
        assert done.json()["status"] == "succeeded" and done.json()["output"]
        waited = await sim.http.post(
            path, json={"input": {"prompt": "p [hang]"}}, headers={"Prefer": "wait=1"}
        )
        # As Replicate does, a sync answer that ran out of time says ``starting``.
        assert waited.json()["status"] == "starting"
        assert (await sim.get(waited.json()["id"]))["status"] == "processing"


async def test_log_counts_creates_lists_newest_first_and_resets() -> None:
    async with running() as sim:
        ids = [(await sim.create(f"scene {n}"))["id"] for n in range(3)]
        by_version = await sim.http.post(
            "/v1/predictions", json={"version": "owner/other-model:abc", "input": {"prompt": "v"}}
        )
        assert by_version.json()["model"] == "owner/other-model"
        assert by_version.json()["version"] == "abc"
        log = await sim.log()
        assert log["counts"]["creates"] == 4
        assert [entry["prompt"] for entry in log["predictions"]] == [
            "scene 0",
            "scene 1",
            "scene 2",
            "v",
        ]
        page = (await sim.http.get("/v1/predictions")).json()
        assert [p["id"] for p in page["results"]][1:] == ids[::-1]
        assert page["next"] is None and page["previous"] is None
        await sim.http.post("/_sim/reset")
        assert await sim.log() == {
            "predictions": [],
            "counts": dict.fromkeys(log["counts"], 0),
        }


async def test_the_same_seed_gives_the_same_fates_and_latencies() -> None:
    async def fates(seed: int) -> list[tuple[str, float]]:
        config = SimulatorConfig(latency=0.05, jitter=0.04, fail_rate=0.5, seed=seed, render=False)
        engine = Simulator(config)
        try:
            made = [engine.create("m/video", "v", {"prompt": "p"}, "http://x/") for _ in range(8)]
            await asyncio.gather(*(p.done.wait() for p in made))
            return [(p.status, p.duration) for p in made]
        finally:
            await engine.close()

    first, again, other = await fates(1), await fates(1), await fates(2)
    assert first == again and first != other
    assert {status for status, _ in first} == {"succeeded", "failed"}


async def test_python_dash_m_runs_the_simulator_with_its_knobs(tmp_path: Path) -> None:
    port = free_port()
    args = ["--port", str(port), "--latency", "0.2", "--jitter", "0.1", "--fail-rate", "0.25"]
    args += ["--rate-limit", "120/min", "--seed", "3", "--no-render", "--data-dir", str(tmp_path)]
    process = subprocess.Popen(
        [sys.executable, "-m", "activities.simulator", *args, "--log-level", "warning"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=AUTH) as http:

            async def config() -> dict[str, Any] | None:
                assert process.poll() is None, process.stderr and process.stderr.read()
                try:
                    return body(await http.get("/_sim/config"))
                except httpx.TransportError:
                    return None

            knobs = await until(config)
            assert knobs["latency"] == 0.2 and knobs["rate_limit"] == 120
            assert knobs["render"] is False and knobs["data_dir"] == str(tmp_path)
            sim = Sim(str(http.base_url), http, None)  # type: ignore[arg-type]
            ended = await sim.finished((await sim.create("p"))["id"])
            assert ended["status"] == "succeeded"
    finally:
        process.terminate()
        process.wait(timeout=20)
        if process.stderr is not None:
            process.stderr.close()
