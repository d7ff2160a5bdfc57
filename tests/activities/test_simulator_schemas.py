"""The simulator holds the models it has a stored schema of to that schema, as Replicate and fal
do: a valid create renders the length the model really makes; a length it does not make, a
missing first frame or a wrong type is refused in the service's own words; a key the model does
not take is ignored but logged. Prompts marked ``[corrupt]`` get an output no player opens."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from pathlib import Path
from typing import Any

import httpx
import pytest
from replicate.exceptions import ReplicateError

from activities.media.export import details
from activities.simulator.schemas import find
from storyreel.errors import MediaError
from tests.activities.test_simulator import body, fetch, official_client, running
from tests.activities.test_simulator_fal import simulator

KLING = "kwaivgi/kling-v2.1"
FAL_KLING = "fal-ai/kling-video/v2.1/master/text-to-video"
FAL_KLING_I2V = "fal-ai/kling-video/v2.1/master/image-to-video"
# A storyboard as storyreel sends it: a data URI, far longer than the log keeps.
BOARD = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"p" * 300).decode()
FAL_KEY = {"Authorization": "Key sim-key"}


def kling(**inputs: Any) -> dict[str, Any]:
    return {"input": {"prompt": "A lighthouse at dusk", "start_image": BOARD, **inputs}}


async def test_a_valid_kling_create_by_the_official_client_renders_the_5_s_kling_makes(
    tmp_path: Path,
) -> None:
    async with running(render=True, latency=0.3) as sim, official_client(sim) as client:

        def run() -> tuple[str, str | None, bytes]:
            # No duration: Kling makes its schema's default, 5 s, whatever the scene wanted.
            prediction = client.predictions.create(model=KLING, input=kling()["input"])
            prediction.wait()
            return prediction.status, prediction.error, fetch(str(prediction.output))

        status, error, video = await asyncio.to_thread(run)
        entry = (await sim.log())["predictions"][0]

    assert (status, error) == ("succeeded", None)
    (tmp_path / "clip.mp4").write_bytes(video)
    assert details(tmp_path / "clip.mp4").duration == pytest.approx(5.0, abs=0.1)
    assert entry["model"] == KLING and entry["seconds"] == 5.0 and entry["unknown_inputs"] == []


async def test_a_length_kling_does_not_make_is_a_422_naming_the_field_and_its_values() -> None:
    async with running() as sim, official_client(sim) as client:
        path = f"/v1/models/{KLING}/predictions"
        refused = await sim.http.post(path, json=kling(duration=4))
        wrong_type = await sim.http.post(path, json=kling(duration="5"))

        def official() -> ReplicateError:
            with pytest.raises(ReplicateError) as raised:
                client.predictions.create(model=KLING, input=kling(duration=4)["input"])
            return raised.value

        error = await asyncio.to_thread(official)
        log = await sim.log()

    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    allowed = "duration must be one of the following: 5, 10"
    assert body(refused) == {
        "title": "Input validation failed",
        "detail": f"- input.duration: {allowed}\n",
        "status": 422,
        "invalid_fields": [{"type": "enum", "field": "input.duration", "description": allowed}],
    }
    assert body(wrong_type)["invalid_fields"] == [
        {
            "type": "invalid_type",
            "field": "input.duration",
            "description": "Invalid type. Expected: integer, given: string",
        }
    ]
    assert error.status == 422 and error.title == "Input validation failed"
    assert log["predictions"] == [] and log["counts"]["creates"] == 0


async def test_a_kling_create_without_its_first_frame_is_a_422() -> None:
    async with running() as sim:
        answer = await sim.http.post(
            f"/v1/models/{KLING}/predictions", json={"input": {"prompt": "A lighthouse"}}
        )
        # A bare version id of a stored model resolves to it and is held to its schema too.
        hailuo = find("replicate", "minimax/hailuo-02")
        assert hailuo is not None and hailuo.version is not None
        by_version = await sim.http.post(
            "/v1/predictions", json={"version": hailuo.version, "input": {"duration": 6}}
        )
        created = (await sim.log())["counts"]["creates"]

    assert answer.status_code == 422
    assert body(answer)["invalid_fields"] == [
        {"type": "required", "field": "input", "description": "start_image is required"}
    ]
    assert body(answer)["detail"] == "- input: start_image is required\n"
    assert by_version.status_code == 422
    assert body(by_version)["invalid_fields"][0]["description"] == "prompt is required"
    assert created == 0


async def test_a_key_the_model_does_not_take_is_ignored_and_logged_with_images_shortened() -> None:
    async with running() as sim:
        # The storyboard sent under storyreel's default name as well as Kling's own.
        created = await sim.http.post(
            f"/v1/models/{KLING}/predictions", json=kling(image=BOARD, duration=10)
        )
        assert created.status_code == 201, created.text
        finished = await sim.finished(body(created)["id"])
        entry = (await sim.log())["predictions"][0]

    assert finished["status"] == "succeeded"
    assert entry["unknown_inputs"] == ["image"] and entry["schema"] is True
    assert entry["seconds"] == 10.0
    # Shortened to its type, size and the digest of what it holds (which picture was sent).
    sent = hashlib.sha256(b"\x89PNG\r\n\x1a\n" + b"p" * 300).hexdigest()
    assert entry["inputs"]["start_image"] == (
        f"data:image/png;base64,… ({len(BOARD)} chars, sha256 {sent})"
    )
    assert entry["inputs"]["duration"] == 10 and entry["inputs"]["prompt"] == "A lighthouse at dusk"
    prediction = sim.engine.get(entry["id"])
    assert prediction is not None and prediction.unknown_inputs == ["image"]


async def test_each_stored_model_makes_its_own_lengths_and_free_names_stay_permissive() -> None:
    async with running() as sim:
        path = "/v1/models/{}/predictions"
        answers = {
            # Hailuo names its first frame its own way; without a duration it makes 6 s.
            "minimax/hailuo-02": {"prompt": "p", "first_frame_image": BOARD},
            "google/veo-3-fast": {"prompt": "p", "duration": 4, "aspect_ratio": "9:16"},
            # Luma takes 4:3, which the simulator's own few inputs would refuse.
            "luma/ray-flash-2-540p": {
                "prompt": "p",
                "start_image_url": BOARD,
                "aspect_ratio": "4:3",
            },
            "storyreel/sim-video": {"prompt": "p", "duration": 3, "anything": [1, 2]},
        }
        for model, inputs in answers.items():
            created = await sim.http.post(path.format(model), json={"input": inputs})
            assert created.status_code == 201, (model, created.text)
        veo = await sim.http.post(
            path.format("google/veo-3-fast"), json={"input": {"prompt": "p", "duration": 5}}
        )
        entries = {entry["model"]: entry for entry in (await sim.log())["predictions"]}

    assert {model: entry["seconds"] for model, entry in entries.items()} == {
        "minimax/hailuo-02": 6.0,
        "google/veo-3-fast": 4.0,
        "luma/ray-flash-2-540p": 5.0,
        "storyreel/sim-video": 3.0,
    }
    assert entries["storyreel/sim-video"]["schema"] is False
    assert entries["storyreel/sim-video"]["unknown_inputs"] == []
    assert body(veo)["invalid_fields"][0]["description"] == (
        "duration must be one of the following: 4, 6, 8"
    )


async def test_get_model_answers_the_stored_schema_and_a_permissive_one_otherwise() -> None:
    async with running() as sim, official_client(sim) as client:
        served = body(await sim.http.get(f"/v1/models/{KLING}"))
        other = body(await sim.http.get("/v1/models/storyreel/sim-video"))
        model = await asyncio.to_thread(client.models.get, "minimax/hailuo-02")
        version = body(
            await sim.http.get(f"/v1/models/{KLING}/versions/{served['latest_version']['id']}")
        )

    assert (served["owner"], served["name"]) == ("kwaivgi", "kling-v2.1")
    components = served["latest_version"]["openapi_schema"]["components"]["schemas"]
    assert components["Input"]["required"] == ["prompt", "start_image"]
    assert components["Input"]["properties"]["duration"]["allOf"] == [
        {"$ref": "#/components/schemas/duration"}
    ]
    assert components["duration"]["enum"] == [5, 10]
    assert len(served["latest_version"]["id"]) == 64
    assert version["openapi_schema"] == served["latest_version"]["openapi_schema"]
    permissive = other["latest_version"]["openapi_schema"]["components"]["schemas"]["Input"]
    assert "required" not in permissive and "prompt" in permissive["properties"]
    assert model.latest_version is not None
    inputs = model.latest_version.openapi_schema["components"]["schemas"]["Input"]
    assert "first_frame_image" in inputs["properties"]


async def test_fal_kling_wants_its_length_as_a_string_and_t2v_takes_no_image() -> None:
    async with simulator() as sim, httpx.AsyncClient(base_url=sim.url, headers=FAL_KEY) as http:
        refused = await http.post(f"/fal/{FAL_KLING}", json={"prompt": "p", "duration": 4})
        accepted = await http.post(
            f"/fal/{FAL_KLING}", json={"prompt": "p", "duration": "10", "image_url": BOARD}
        )
        no_image = await http.post(f"/fal/{FAL_KLING_I2V}", json={"prompt": "p"})
        free = await http.post("/fal/fal-ai/kling-video/v2/master/text-to-video", json={"x": 1})
        log = await http.get("/_sim/log")

    assert refused.status_code == 422
    assert refused.json() == {
        "detail": [
            {
                "type": "literal_error",
                "loc": ["body", "duration"],
                "msg": "Input should be '5' or '10'",
                "input": 4,
                "ctx": {"expected": "'5' or '10'"},
            }
        ]
    }
    assert accepted.status_code == 200, accepted.text
    assert [(item["type"], item["loc"]) for item in no_image.json()["detail"]] == [
        ("missing", ["body", "image_url"])
    ]
    assert free.status_code == 200
    entries = {entry["model"]: entry for entry in log.json()["predictions"]}
    assert entries[FAL_KLING]["unknown_inputs"] == ["image_url"]
    assert entries[FAL_KLING]["seconds"] == 10.0 and entries[FAL_KLING]["protocol"] == "fal"
    assert log.json()["counts"]["creates"] == 2


async def test_fal_serves_each_endpoints_openapi_document() -> None:
    async with simulator() as sim, httpx.AsyncClient(base_url=sim.url) as http:
        path = "/fal/openapi/queue/openapi.json"
        veo = (await http.get(path, params={"endpoint_id": "fal-ai/veo3"})).json()
        free = (await http.get(path, params={"endpoint_id": "fal-ai/some/model"})).json()
        veo_eight = await http.post(
            "/fal/fal-ai/veo3", json={"prompt": "p", "duration": "8"}, headers=FAL_KEY
        )

    assert veo["info"]["x-fal-metadata"]["endpointId"] == "fal-ai/veo3"
    reference = veo["paths"]["/fal-ai/veo3"]["post"]["requestBody"]["content"]["application/json"]
    name = reference["schema"]["$ref"].rsplit("/", 1)[-1]
    assert veo["components"]["schemas"][name]["properties"]["duration"]["enum"] == [
        "4s",
        "6s",
        "8s",
    ]
    assert free["info"]["x-fal-metadata"]["endpointId"] == "fal-ai/some/model"
    assert veo_eight.status_code == 422
    assert veo_eight.json()["detail"][0]["msg"] == "Input should be '4s', '6s' or '8s'"


async def test_corrupt_prompts_get_an_output_no_player_opens(tmp_path: Path) -> None:
    async with running() as sim:
        ids = [(await sim.create(prompt))["id"] for prompt in ("a [corrupt]", "b [corrupt-once]")]
        again = (await sim.create("b [corrupt-once]"))["id"]
        outputs = []
        for ident in [*ids, again]:
            finished = await sim.finished(ident)
            assert finished["status"] == "succeeded", finished
            outputs.append(await asyncio.to_thread(fetch, finished["output"]))
        flags = [entry["corrupt"] for entry in (await sim.log())["predictions"]]

    assert flags == [True, True, False]
    for index, output in enumerate(outputs[:2]):
        assert b"ftyp" not in output[:16] and len(output) < 100
        (tmp_path / f"{index}.mp4").write_bytes(output)
        with pytest.raises(MediaError):
            details(tmp_path / f"{index}.mp4")
    assert outputs[2][4:8] == b"ftyp"


async def test_a_model_without_an_aspect_ratio_input_follows_its_first_frame(
    tmp_path: Path,
) -> None:
    """Kling image-to-video takes no aspect ratio: its clip has the start image's shape, so a
    9:16 storyboard makes a 9:16 clip (not a 16:9 one letterboxed into a vertical video)."""
    header = b"\x00\x00\x00\rIHDR" + (1080).to_bytes(4, "big") + (1920).to_bytes(4, "big")
    tall = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + header).decode()
    async with running(render=True, latency=0.3) as sim, official_client(sim) as client:

        def run() -> bytes:
            prediction = client.predictions.create(
                model=KLING, input=kling(start_image=tall)["input"]
            )
            prediction.wait()
            return fetch(str(prediction.output))

        video = await asyncio.to_thread(run)
    (tmp_path / "clip.mp4").write_bytes(video)
    made = details(tmp_path / "clip.mp4")
    assert (made.width, made.height) == (720, 1280)  # 720p, as Kling makes
