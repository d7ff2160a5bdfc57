"""Waiting reads over HTTP: ``GET /v1/generations/{id}?wait=N`` answers when the run moves on,
or after N seconds with the same ETag. (How soon after a change is benchmarked: B9.)"""

from __future__ import annotations

import asyncio
import time

from tests.api.conftest import LiveApi
from tests.api.test_generations import body, poll_until


async def test_a_waiting_read_answers_on_a_change_or_after_its_seconds(live_api: LiveApi) -> None:
    api = live_api
    posted = await api.http.post("/v1/generations", json=body("sleepy", 2, review="storyboard"))
    assert posted.status_code == 202, posted.text
    gid = posted.json()["id"]
    assert posted.json()["quote"]["billed_seconds"] == 4
    await poll_until(api, gid, {"awaiting_approval"}, [])
    plain = await api.http.get(f"/v1/generations/{gid}")
    tag = plain.headers["etag"]
    assert tag.startswith('W/"')

    # Nothing changes while a run awaits approval: the answer comes after the wait, unchanged.
    began = time.monotonic()
    still = await api.http.get(f"/v1/generations/{gid}", params={"wait": 2})
    waited = time.monotonic() - began
    assert still.status_code == 200 and still.headers["etag"] == tag
    assert still.json()["status"] == "awaiting_approval"
    assert 1.9 <= waited < 20, waited

    # A waiter holding the tag is woken by the approval, long before its 30 s.
    async def waiter() -> tuple[float, dict[str, str], dict[str, object]]:
        began = time.monotonic()
        answer = await api.http.get(
            f"/v1/generations/{gid}", params={"wait": 30}, headers={"If-None-Match": tag}
        )
        assert answer.status_code == 200, answer.text
        return time.monotonic() - began, dict(answer.headers), answer.json()

    waiting = asyncio.create_task(waiter())
    approved = await api.http.post(f"/v1/generations/{gid}/approve")
    assert approved.status_code == 202, approved.text
    waited, headers, view = await waiting
    assert view["status"] != "awaiting_approval" and headers["etag"] != tag
    assert waited < 25, waited

    # Once the run has ended nothing will change: the same tag answers at once.
    final = await poll_until(api, gid, {"completed", "failed"}, [])
    assert final["status"] == "completed"
    ended = await api.http.get(f"/v1/generations/{gid}")
    began = time.monotonic()
    again = await api.http.get(
        f"/v1/generations/{gid}", params={"wait": 30, "since": ended.headers["etag"]}
    )
    assert again.headers["etag"] == ended.headers["etag"]
    assert time.monotonic() - began < 20

    # Out of range is refused; another user's run does not exist, waiting or not.
    for wait in (61, 0, -1):
        refused = await api.http.get(f"/v1/generations/{gid}", params={"wait": wait})
        assert refused.status_code == 422, (wait, refused.text)
    async with api.new_user("mallory") as mallory:
        stolen = await mallory.get(f"/v1/generations/{gid}", params={"wait": 5})
        assert stolen.status_code == 404 and "no generation" in stolen.json()["detail"]


async def test_the_openapi_page_says_how_to_wait(live_api: LiveApi) -> None:
    schema = (await live_api.http.get("/openapi.json")).json()
    get = schema["paths"]["/v1/generations/{generation_id}"]["get"]
    parameters = {p["name"]: p for p in get["parameters"]}
    assert {"wait", "since", "If-None-Match"} <= set(parameters)
    wait = parameters["wait"]
    assert "60" in wait["description"]
    assert wait["schema"]["anyOf"][0]["maximum"] == 60
    assert "ETag" in get["responses"]["200"]["headers"]
    assert {"404", "422"} <= set(get["responses"])
