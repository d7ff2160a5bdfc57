"""Outbound webhooks through the API, the worker and a real receiver on 127.0.0.1: signed,
retried until they arrive under one id, listed, redelivered; refused targets are a 422 and a
redirect is never followed."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from playwright.async_api import expect
from standardwebhooks import Webhook
from temporalio.client import Client

from activities.providers import ClipProvider
from storyreel.settings import Settings
from tests.api.conftest import LiveApi, live_stack
from tests.api.test_generations import body, poll_until
from tests.api.test_page import chromium, reaches, run_page, screenshot
from tests.receiver import receiver


def allow_local_receivers(settings: Settings) -> None:
    """What a test receiver on 127.0.0.1 needs, and retries a test can wait for."""
    settings.webhook_allow_private = True
    settings.webhook_retry_initial_seconds = 0.3


async def deliveries_until(
    api: LiveApi, generation_id: str, count: int, timeout: float = 60.0, kind: str = "generations"
) -> dict[str, Any]:
    """The run's (or batch's) delivery list once it holds ``count`` attempts."""
    deadline = time.monotonic() + timeout
    while True:
        answer = await api.http.get(f"/v1/{kind}/{generation_id}/deliveries")
        assert answer.status_code == 200, answer.text
        listed: dict[str, Any] = answer.json()
        if len(listed["items"]) >= count:
            return listed
        assert time.monotonic() < deadline, listed
        await asyncio.sleep(0.1)


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]:8443/hook",
        "https://localhost/hook",
        "http://hooks.example.com/hook",
    ],
)
async def test_a_webhook_to_a_private_address_or_without_https_is_refused(
    live_api: LiveApi, url: str
) -> None:
    answer = await live_api.http.post("/v1/generations", json=body("sleepy", 1, webhook=url))
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"].startswith("webhook: ")
    batch = {"items": [body("sleepy", 1)], "webhook": url}
    answer = await live_api.http.post("/v1/batches", json=batch)
    assert answer.status_code == 422, answer.text
    item = {"items": [body("sleepy", 1), body("sleepy", 1, webhook=url)]}
    answer = await live_api.http.post("/v1/batches", json=item)
    assert answer.status_code == 422 and "items[1].webhook: " in answer.json()["detail"]


async def test_the_secret_is_made_once_per_user_and_rotates(live_api: LiveApi) -> None:
    first = (await live_api.http.get("/v1/webhooks/secret")).json()["key"]
    assert first.startswith("whsec_")
    assert (await live_api.http.get("/v1/webhooks/secret")).json()["key"] == first
    async with live_api.new_user("bob") as bob:
        assert (await bob.get("/v1/webhooks/secret")).json()["key"] != first
    rotated = await live_api.http.post("/v1/webhooks/secret/rotate")
    assert rotated.status_code == 200 and rotated.json()["key"] not in ("", first)
    assert (await live_api.http.get("/v1/webhooks/secret")).json() == rotated.json()


async def test_a_delivery_is_signed_and_retried_until_it_arrives_under_one_id(
    client: Client, settings: Settings, clip_providers: dict[str, ClipProvider]
) -> None:
    allow_local_receivers(settings)
    with receiver(500, 500, 200) as hooks:
        async with live_stack(client, settings, clip_providers, "alice") as api:
            secret = (await api.http.get("/v1/webhooks/secret")).json()["key"]
            request = body("sleepy", 1, webhook=hooks.url)
            answer = await api.http.post("/v1/generations", json=request)
            assert answer.status_code == 202, answer.text
            gid = answer.json()["id"]
            await poll_until(api, gid, {"completed"}, [])
            hits = await hooks.wait_for(3)
            listed = await deliveries_until(api, gid, 3)

            async with api.new_user("mallory") as mallory:
                other = await mallory.get(f"/v1/generations/{gid}/deliveries")
                assert other.status_code == 404
                first = listed["items"][0]["delivery_id"]
                again = await mallory.post(f"/v1/generations/{gid}/deliveries/{first}/redeliver")
                assert again.status_code == 404

            delivered = listed["items"][2]["delivery_id"]
            again = await api.http.post(f"/v1/generations/{gid}/deliveries/{delivered}/redeliver")
            assert again.status_code == 202, again.text
            redelivered = (await hooks.wait_for(4))[3]
            relisted = await deliveries_until(api, gid, 4)

    assert [hit.answered for hit in hits] == [500, 500, 200]
    ids = {hit.headers["webhook-id"] for hit in [*hits, redelivered]}
    assert len(ids) == 1, "every retry and the redelivery carry the event's one id"
    for hit in [*hits, redelivered]:
        verified = Webhook(secret).verify(hit.body, hit.headers)
        assert verified == json.loads(hit.body)
    event = json.loads(hits[0].body)
    assert event["type"] == "generation.completed"
    assert event["data"]["id"] == gid and event["data"]["status"] == "completed"
    assert event["data"]["video_url"].endswith(f"/v1/generations/{gid}/video")
    assert json.loads(redelivered.body) == event

    assert listed["webhook"] == hooks.url
    attempts = listed["items"]
    assert [a["attempt"] for a in attempts] == [1, 2, 3]
    assert [a["status_code"] for a in attempts] == [500, 500, 200]
    assert [a["delivered"] for a in attempts] == [False, False, True]
    assert {a["event_id"] for a in attempts} == ids
    assert {a["type"] for a in attempts} == {"generation.completed"}
    assert attempts[0]["error"] == "HTTP 500"
    assert relisted["items"][3]["status_code"] == 200
    assert relisted["items"][3]["event_id"] in ids


async def test_every_change_of_status_when_the_filter_says_status(
    client: Client, settings: Settings, clip_providers: dict[str, ClipProvider]
) -> None:
    allow_local_receivers(settings)
    with receiver() as hooks:
        async with live_stack(client, settings, clip_providers, "alice") as api:
            request = body("sleepy", 1, webhook=hooks.url, webhook_events_filter=["status"])
            gid = (await api.http.post("/v1/generations", json=request)).json()["id"]
            await poll_until(api, gid, {"completed"}, [])
            # planning, storyboarding, generating, assembling, completed
            hits = await hooks.wait_for(5)
    types = [json.loads(hit.body)["type"] for hit in hits]
    assert sorted(types) == sorted(
        f"generation.{status}"
        for status in ("planning", "storyboarding", "generating", "assembling", "completed")
    )
    assert len({hit.headers["webhook-id"] for hit in hits}) == 5, "one id per event"


async def test_a_redirect_is_not_followed(
    client: Client, settings: Settings, clip_providers: dict[str, ClipProvider]
) -> None:
    allow_local_receivers(settings)
    with receiver() as elsewhere, receiver(default=302) as hooks:
        hooks.script.extend([(302, {"Location": elsewhere.url})] * 50)
        async with live_stack(client, settings, clip_providers, "alice") as api:
            request = body("sleepy", 1, webhook=hooks.url)
            gid = (await api.http.post("/v1/generations", json=request)).json()["id"]
            await poll_until(api, gid, {"completed"}, [])
            listed = await deliveries_until(api, gid, 2)
            # The delivery keeps retrying (a redirect is a failed attempt): end it here.
            event_id = listed["items"][0]["event_id"]
            await client.get_workflow_handle(event_id).terminate("test over")
    assert elsewhere.hits == [], "the redirect's target was called"
    first = listed["items"][0]
    assert first["status_code"] == 302 and not first["delivered"]
    assert "redirect" in first["error"] and "not followed" in first["error"]


async def test_a_batch_calls_its_webhook_when_it_ends(
    client: Client, settings: Settings, clip_providers: dict[str, ClipProvider]
) -> None:
    allow_local_receivers(settings)
    with receiver() as hooks:
        async with live_stack(client, settings, clip_providers, "alice") as api:
            batch = {"items": [body("sleepy", 1)], "webhook": hooks.url}
            answer = await api.http.post("/v1/batches", json=batch)
            assert answer.status_code == 202, answer.text
            batch_id = answer.json()["id"]
            hit = (await hooks.wait_for(1))[0]
            listed = await deliveries_until(api, batch_id, 1, kind="batches")
    event = json.loads(hit.body)
    assert event["type"] == "batch.completed"
    assert event["data"]["id"] == batch_id and event["data"]["counts"] == {"completed": 1}
    assert listed["items"][0]["delivered"] and listed["items"][0]["type"] == "batch.completed"


async def test_the_page_lists_a_runs_deliveries(
    client: Client, settings: Settings, clip_providers: dict[str, ClipProvider]
) -> None:
    allow_local_receivers(settings)
    with receiver(500) as hooks:
        async with live_stack(client, settings, clip_providers, "alice") as api:
            request = body("sleepy", 1, webhook=hooks.url)
            gid = (await api.http.post("/v1/generations", json=request)).json()["id"]
            await poll_until(api, gid, {"completed"}, [])
            async with chromium() as browser:
                page = await run_page(browser, api, gid)
                await reaches(page, "completed")
                deliveries = page.get_by_label("Webhook deliveries")
                await expect(deliveries).to_be_visible()
                await expect(deliveries).to_contain_text(f"To {hooks.url}")
                items = deliveries.locator("li.delivery")
                # The list is read again until the event is delivered.
                await expect(items).to_have_count(2, timeout=60_000)
                await expect(items.nth(0)).to_contain_text("generation.completed · attempt 1")
                await expect(items.nth(0)).to_contain_text("HTTP 500")
                await expect(items.nth(1)).to_contain_text("attempt 2 · 200")
                await screenshot(page, "webhook-deliveries.png")
