"""Accounts: API keys on every route, each user sees only their own, per-user limits."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import httpx
import pytest
import websockets
from temporalio.client import Client

from activities.providers import ClipProvider
from storyreel.contracts import GenerationState, GenerationStatus, Platform
from storyreel.settings import Settings
from tests.api.conftest import LiveApi, live_stack


def body(count: int = 2, provider: str = "sleepy") -> dict[str, object]:
    return {
        "title": "Mine",
        "scenes": [{"description": f"Scene {n}", "duration": 2} for n in range(count)],
        "platform": "youtube",
        "provider": provider,
        # Cuts, no captions: the stitch copies streams (the finish has tests of its own).
        "transition": "none",
        "captions": False,
    }


async def finished(http: httpx.AsyncClient, gid: str) -> dict:
    deadline = time.monotonic() + 120
    while True:
        view = (await http.get(f"/v1/generations/{gid}")).json()
        if view["status"] in ("completed", "failed", "cancelled"):
            return dict(view)
        assert time.monotonic() < deadline, view
        await asyncio.sleep(0.2)


ROUTES = [
    ("GET", "/v1/generations/{gid}"),
    ("GET", "/v1/generations/{gid}/video"),
    ("GET", "/v1/generations/{gid}/thumbnail"),
    ("GET", "/v1/generations/{gid}/clips/1/video"),
    ("POST", "/v1/generations/{gid}/clips/1/retry"),
    ("POST", "/v1/generations/{gid}/cancel"),
]


async def test_each_user_sees_only_their_own(live_api: LiveApi) -> None:
    alice = live_api.http
    mine = (await alice.post("/v1/generations", json=body())).json()["id"]
    await finished(alice, mine)
    async with live_api.new_user("bob") as bob:
        theirs = (await bob.post("/v1/generations", json=body(1))).json()["id"]
        await finished(bob, theirs)

        for method, route in ROUTES:
            answer = await bob.request(method, route.format(gid=mine))
            assert answer.status_code == 404, (route, answer.text)
            assert "no generation" in answer.json()["detail"]
            own = await alice.request(method, route.format(gid=mine))
            assert own.status_code != 404 or "retry" in route, (route, own.text)

        listed = {item["id"] for item in (await bob.get("/v1/generations")).json()["items"]}
        assert listed == {theirs}
        listed = {item["id"] for item in (await alice.get("/v1/generations")).json()["items"]}
        assert listed == {mine}

        ws = live_api.url.replace("http://", "ws://") + f"/v1/generations/{mine}/ws"
        async with websockets.connect(ws) as socket:
            await socket.send(json.dumps({"type": "auth", "key": bob.headers["Authorization"][7:]}))
            assert json.loads(await socket.recv())["type"] == "error"
            await socket.wait_closed()
            assert socket.close_code == 4404

        # The same idempotency key from two users is two generations.
        key = {"Idempotency-Key": "same-key"}
        first = (await alice.post("/v1/generations", json=body(1), headers=key)).json()["id"]
        second = (await bob.post("/v1/generations", json=body(1), headers=key)).json()["id"]
        assert first != second


async def test_no_key_or_a_wrong_key_is_401_everywhere(live_api: LiveApi) -> None:
    gid = (await live_api.http.post("/v1/generations", json=body(1))).json()["id"]
    routes = [*ROUTES, ("GET", "/v1/generations"), ("POST", "/v1/generations")]
    async with httpx.AsyncClient(base_url=live_api.url, timeout=30) as anonymous:
        for headers in ({}, {"Authorization": "Bearer sr_not-a-real-key"}, {"Authorization": "x"}):
            for method, route in routes:
                answer = await anonymous.request(
                    method, route.format(gid=gid), headers=headers, json=body(1)
                )
                assert answer.status_code == 401, (route, headers, answer.text)
                assert answer.headers["WWW-Authenticate"] == "Bearer"
                assert "API key" in answer.json()["detail"]
    ws = live_api.url.replace("http://", "ws://") + f"/v1/generations/{gid}/ws"
    async with websockets.connect(ws) as socket:
        await socket.send(json.dumps({"type": "auth", "key": "wrong"}))
        assert "API key" in json.loads(await socket.recv())["error"]
        await socket.wait_closed()
        assert socket.close_code == 4401
    await finished(live_api.http, gid)


async def test_the_list_pages_newest_first_and_filters(live_api: LiveApi) -> None:
    ids = [
        (await live_api.http.post("/v1/generations", json=body(1))).json()["id"] for _ in range(3)
    ]
    for gid in ids:
        await finished(live_api.http, gid)
    first = (await live_api.http.get("/v1/generations", params={"limit": 2})).json()
    assert [item["id"] for item in first["items"]] == ids[::-1][:2]
    rest = (
        await live_api.http.get(
            "/v1/generations", params={"limit": 2, "cursor": first["next_cursor"]}
        )
    ).json()
    assert [item["id"] for item in rest["items"]] == ids[:1] and rest["next_cursor"] is None
    completed = (await live_api.http.get("/v1/generations", params={"status": "completed"})).json()
    assert len(completed["items"]) == 3
    failed = (await live_api.http.get("/v1/generations", params={"status": "failed"})).json()
    assert failed["items"] == []
    bad = await live_api.http.get("/v1/generations", params={"status": "nope"})
    assert bad.status_code == 422


async def test_a_run_temporal_forgot_answers_from_its_record(live_api: LiveApi) -> None:
    user = live_api.records.user_for_key(live_api.key)
    assert user is not None and user.id is not None
    state = GenerationState(
        generation_id="gen-archived-0001",
        title="Archived",
        status=GenerationStatus.completed,
        platform=Platform.youtube,
        duration=12.0,
    )
    live_api.records.upsert_generation(state, user_id=user.id, request={})
    view = (await live_api.http.get("/v1/generations/gen-archived-0001")).json()
    assert view["status"] == "completed" and view["title"] == "Archived"
    assert view["duration"] == 12.0


@pytest.fixture
async def strict_api(client: Client, settings: Settings, prepared_clip) -> AsyncIterator[LiveApi]:
    from tests.fakes import SleepyProvider

    settings.requests_per_minute = 6
    settings.max_running_generations = 1
    providers: dict[str, ClipProvider] = {"sleepy": SleepyProvider(prepared_clip, 3.0)}
    async with live_stack(client, settings, providers, "carol") as api:
        yield api


async def test_per_user_limits_answer_429_with_retry_after(strict_api: LiveApi) -> None:
    http = strict_api.http
    first = await http.post("/v1/generations", json=body(1))
    assert first.status_code == 202
    second = await http.post("/v1/generations", json=body(1))
    assert second.status_code == 429
    assert int(second.headers["Retry-After"]) > 0
    assert "limit is 1" in second.json()["detail"]
    answers = [await http.get("/v1/generations") for _ in range(6)]
    limited = [a for a in answers if a.status_code == 429]
    assert limited, [a.status_code for a in answers]
    assert 1 <= int(limited[0].headers["Retry-After"]) <= 60
    assert "requests in a minute" in limited[0].json()["detail"]
