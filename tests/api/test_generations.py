"""The HTTP API against the real stack: dev server, worker, uvicorn."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import websockets

from storyreel.contracts import GenerationStatus
from tests.api.conftest import LiveApi
from tests.fakes import FlakyProvider

ORDER = [status.value for status in GenerationStatus]


def body(provider: str = "local", count: int = 3, **extra: object) -> dict[str, object]:
    return {
        "title": "Harbour",
        "scenes": [
            {"description": f"Scene {n}: the harbour wakes", "duration": 2} for n in range(count)
        ],
        "platform": "youtube",
        "provider": provider,
        # Cuts, no captions: the stitch copies streams (the finish has tests of its own).
        "transition": "none",
        "captions": False,
        **extra,
    }


async def poll_until(api: LiveApi, generation_id: str, statuses: set[str], seen: list[dict]):
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        answer = await api.http.get(f"/v1/generations/{generation_id}")
        assert answer.status_code == 200, answer.text
        view = answer.json()
        seen.append(view)
        if view["status"] in statuses:
            return view
        await asyncio.sleep(0.1)
    raise AssertionError(f"{generation_id} never reached {statuses}: {seen[-1]}")


async def test_a_generation_moves_through_its_statuses_to_completed(live_api: LiveApi) -> None:
    answer = await live_api.http.post("/v1/generations", json=body("local"))
    assert answer.status_code == 202
    accepted = answer.json()
    gid = accepted["id"]
    assert accepted["links"]["self"] == f"/v1/generations/{gid}"
    assert accepted["links"]["events"] == f"/v1/generations/{gid}/ws"
    assert accepted["links"]["temporal_ui"].endswith(f"/namespaces/default/workflows/{gid}")

    seen: list[dict] = []
    final = await poll_until(live_api, gid, {"completed", "failed"}, seen)
    assert final["status"] == "completed"
    statuses = [view["status"] for view in seen]
    distinct = [s for i, s in enumerate(statuses) if i == 0 or statuses[i - 1] != s]
    assert distinct == sorted(distinct, key=ORDER.index), distinct
    assert "generating" in distinct
    assert all(clip["progress"] == 100 for clip in final["clips"])
    partial = [c["progress"] for v in seen for c in v["clips"] if 0 < c["progress"] < 100]
    assert partial, "no live progress between 0 and 100 was ever reported"

    video = await live_api.http.get(final["video_url"])
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    assert video.content[4:8] == b"ftyp"
    thumbnail = await live_api.http.get(final["thumbnail_url"])
    assert thumbnail.headers["content-type"] == "image/jpeg"
    assert thumbnail.content[:2] == b"\xff\xd8"
    clip = await live_api.http.get(final["clips"][0]["url"])
    assert clip.status_code == 200

    # A closed run still answers, and a complete clip cannot be retried.
    again = await live_api.http.get(f"/v1/generations/{gid}")
    assert again.json()["status"] == "completed"
    conflict = await live_api.http.post(f"/v1/generations/{gid}/clips/1/retry", json={})
    assert conflict.status_code == 409
    assert conflict.json()["detail"] == "clip 1 is complete, not failed"
    ended = await live_api.http.post(f"/v1/generations/{gid}/cancel")
    assert ended.status_code == 409 and "already ended" in ended.json()["detail"]


async def test_the_same_idempotency_key_returns_the_same_generation(live_api: LiveApi) -> None:
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = await live_api.http.post("/v1/generations", json=body("sleepy", 1), headers=key)
    second = await live_api.http.post("/v1/generations", json=body("sleepy", 1), headers=key)
    other = await live_api.http.post(
        "/v1/generations", json=body("sleepy", 1), headers={"Idempotency-Key": uuid.uuid4().hex}
    )
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"] != other.json()["id"]
    for gid in {first.json()["id"], other.json()["id"]}:
        await poll_until(live_api, gid, {"completed"}, [])
    after = await live_api.http.post("/v1/generations", json=body("sleepy", 1), headers=key)
    assert after.json()["id"] == first.json()["id"]


async def test_unknown_ids_are_404(live_api: LiveApi) -> None:
    for method, path in [
        ("GET", "/v1/generations/gen-doesnotexist"),
        ("GET", "/v1/generations/gen-doesnotexist/video"),
        ("GET", "/v1/generations/..%2F..%2Fetc"),
        ("POST", "/v1/generations/gen-doesnotexist/cancel"),
        ("POST", "/v1/generations/gen-doesnotexist/clips/1/retry"),
    ]:
        answer = await live_api.http.request(method, path)
        assert answer.status_code == 404, (path, answer.text)
        detail = answer.json()["detail"]
        assert "no generation" in detail or (".." in path and detail == "Not Found")


async def test_invalid_bodies_are_422_with_field_messages(live_api: LiveApi) -> None:
    cases = [
        ({"script": "One. Two."}, ["body", "title"], "Field required"),
        ({**body(), "platform": "vhs"}, ["body", "platform"], "Input should be"),
        ({**body(), "script": "Also a script."}, ["body"], "either 'script' or 'scenes'"),
        ({"title": "x", "scenes": [{"description": "a", "duration": 60}]},
         ["body", "scenes", 0, "duration"], "less than or equal to 10"),
        ({**body(), "max_parallel_clips": 0}, ["body", "max_parallel_clips"], "greater than"),
        ({**body(), "provider": "nope"}, None, "provider: unknown provider 'nope'"),
        ({"title": "x", "scenes": [{"description": "\U0010fffd", "duration": 3}]},
         None, "captions: no font here draws UNKNOWN"),
    ]  # fmt: skip
    for payload, loc, message in cases:
        answer = await live_api.http.post("/v1/generations", json=payload)
        assert answer.status_code == 422, payload
        errors = answer.json()["detail"]
        if loc is None:
            assert message in errors
        else:
            assert any(e["loc"] == loc and message in e["msg"] for e in errors), errors


async def test_retry_through_the_api(live_api: LiveApi, flaky: FlakyProvider) -> None:
    gid = (await live_api.http.post("/v1/generations", json=body("flaky", 3))).json()["id"]
    view = await poll_until(live_api, gid, {"awaiting_retry"}, [])
    assert view["clips"][1]["status"] == "failed" and view["clips"][1]["attempts"] == 3
    not_failed = await live_api.http.post(f"/v1/generations/{gid}/clips/1/retry")
    assert not_failed.status_code == 409
    missing = await live_api.http.post(f"/v1/generations/{gid}/clips/9/retry")
    assert missing.status_code == 404
    flaky.heal()
    answer = await live_api.http.post(
        f"/v1/generations/{gid}/clips/2/retry", json={"prompt": "a calmer harbour"}
    )
    assert answer.status_code == 202
    final = await poll_until(live_api, gid, {"completed", "failed"}, [])
    assert final["status"] == "completed"
    assert final["clips"][1]["prompt"] == "a calmer harbour"


async def test_cancel_through_the_api(live_api: LiveApi) -> None:
    gid = (await live_api.http.post("/v1/generations", json=body("sleepy", 2))).json()["id"]
    await poll_until(live_api, gid, {"generating"}, [])
    answer = await live_api.http.post(f"/v1/generations/{gid}/cancel")
    assert answer.status_code == 202
    final = await poll_until(live_api, gid, {"cancelled", "completed", "failed"}, [])
    assert final["status"] == "cancelled"


async def test_websocket_streams_every_clip_then_completion(live_api: LiveApi) -> None:
    gid = (await live_api.http.post("/v1/generations", json=body("sleepy", 3))).json()["id"]
    events: list[dict] = []
    url = live_api.url.replace("http://", "ws://") + f"/v1/generations/{gid}/ws"
    async with asyncio.timeout(120):
        async with websockets.connect(url, additional_headers=live_api.headers()) as socket:
            async for message in socket:
                events.append(json.loads(message))
            assert socket.close_code == 1000
    assert events[0]["type"] == "generation_status"
    progress = [e for e in events if e["type"] == "video_progress"]
    assert {e["clip_id"] for e in progress} == {1, 2, 3}
    assert any(0 < e["progress"] < 100 for e in progress), "no live progress was pushed"
    assert {e["clip_id"] for e in events if e["type"] == "video_complete"} == {1, 2, 3}
    assert events[-1]["type"] == "generation_complete"
    assert events[-1]["video_url"] == f"/v1/generations/{gid}/video"


async def test_websocket_for_an_unknown_id_says_so(live_api: LiveApi) -> None:
    url = live_api.url.replace("http://", "ws://") + "/v1/generations/gen-nope/ws"
    async with websockets.connect(url, additional_headers=live_api.headers()) as socket:
        message = json.loads(await socket.recv())
        assert message == {"type": "error", "error": "no generation 'gen-nope'"}
        await socket.wait_closed()
        assert socket.close_code == 4404
