"""Batches over the real stack: validation up front, counts from the generations' own
records, isolation, cancellation, and a person's run going before a busy batch."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from temporalio.client import Client

from storyreel.settings import ProviderLimit, Settings
from tests.api.conftest import LiveApi, live_stack
from tests.fakes import SleepyProvider


def item(title: str, clips: int = 5, provider: str = "sleepy", **extra: object) -> dict[str, Any]:
    return {
        "title": title,
        "scenes": [{"description": f"{title}, scene {n}", "duration": 2} for n in range(clips)],
        "platform": "youtube",
        "provider": provider,
        # A stream-copy join: the media queue stays quick, the clip queue is the busy one.
        "captions": False,
        "transition": "none",
        **extra,
    }


async def wait_for(
    check: Callable[[], Any], what: str, timeout: float = 120.0, every: float = 0.1
) -> Any:
    """Poll ``check`` (sync or async) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        await asyncio.sleep(every)


async def batch_view(api: LiveApi, batch_id: str) -> dict[str, Any]:
    answer = await api.http.get(f"/v1/batches/{batch_id}")
    assert answer.status_code == 200, answer.text
    view: dict[str, Any] = answer.json()
    return view


async def own_statuses(api: LiveApi, ids: list[str]) -> Counter[str]:
    statuses: Counter[str] = Counter()
    for generation in ids:
        answer = await api.http.get(f"/v1/generations/{generation}")
        assert answer.status_code == 200, answer.text
        statuses[answer.json()["status"]] += 1
    return statuses


async def test_an_invalid_item_is_named_and_nothing_starts(live_api: LiveApi) -> None:
    items = [item(f"ok {n}", 2, "local") for n in range(5)]
    items[3].pop("scenes")
    answer = await live_api.http.post("/v1/batches", json={"items": items})
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"].startswith("items[3]"), answer.text
    items[3] = item("bad provider", 2, "nowhere")
    answer = await live_api.http.post("/v1/batches", json={"items": items})
    assert answer.status_code == 422
    assert answer.json()["detail"].startswith("items[3].provider: unknown provider"), answer.text
    answer = await live_api.http.post("/v1/batches", json={"items": []})
    assert answer.status_code == 422
    assert (await live_api.http.get("/v1/batches")).json()["items"] == []


async def test_a_person_goes_before_a_busy_batch_which_still_completes(
    client: Client, settings: Settings, prepared_clip: Path
) -> None:
    """Clip worker limited to 5 at once; a batch of 6 five-clip runs, then one interactive
    five-clip run: it ends before at least half of the batch, and the batch completes."""
    settings.provider_limits["sleepy"] = ProviderLimit(max_concurrent=5)
    provider = SleepyProvider(prepared_clip, 1.5)
    async with live_stack(client, settings, {"sleepy": provider}, "alice") as api:
        titles = [f"batch run {n}" for n in range(6)]
        answer = await api.http.post(
            "/v1/batches", json={"title": "six", "items": [item(t) for t in titles]}
        )
        assert answer.status_code == 202, answer.text
        batch = answer.json()
        batch_id, ids = batch["id"], batch["generations"]
        assert batch["status"] == "running" and batch["total"] == 6 and len(ids) == 6

        # The batch holds every clip slot (and has a backlog) when the person starts a run.
        await wait_for(lambda: provider.log.running == 5, "the batch filling the clip worker")
        answer = await api.http.post("/v1/generations", json=item("a person's run"))
        assert answer.status_code == 202, answer.text
        mine = answer.json()["id"]

        async def mine_done() -> bool:
            view = (await api.http.get(f"/v1/generations/{mine}")).json()
            assert view["status"] not in ("failed", "cancelled"), view
            return bool(view["status"] == "completed")

        await wait_for(mine_done, "the interactive run", every=0.05)
        finished_first = (await own_statuses(api, ids))["completed"]
        assert finished_first <= 3, f"{finished_first} of 6 batch runs finished first"

        # Counts are the generations' own states, while the batch runs and at its end.
        view = await batch_view(api, batch_id)
        assert sum(view["counts"].values()) == 6 and view["generations"] == ids
        final = await wait_for(
            lambda: _ended(api, batch_id), "the batch to end", timeout=180, every=0.5
        )
        assert final["status"] == "completed", final
        assert final["counts"] == {"completed": 6}
        assert Counter(final["counts"]) == await own_statuses(api, ids)
        listed = (await api.http.get("/v1/batches")).json()["items"]
        assert [entry["id"] for entry in listed] == [batch_id]
        assert {
            entry["title"] for entry in (await api.http.get("/v1/generations")).json()["items"]
        } == {*titles, "a person's run"}

        # Another user sees none of it.
        async with api.new_user("mallory") as other:
            assert (await other.get(f"/v1/batches/{batch_id}")).status_code == 404
            assert (await other.post(f"/v1/batches/{batch_id}/cancel")).status_code == 404
            assert (await other.get(f"/v1/generations/{ids[0]}")).status_code == 404
            assert (await other.get("/v1/batches")).json()["items"] == []
        assert (await api.http.post(f"/v1/batches/{batch_id}/cancel")).status_code == 409


async def _ended(api: LiveApi, batch_id: str) -> dict[str, Any] | None:
    view = await batch_view(api, batch_id)
    return view if view["status"] != "running" else None


async def test_cancelling_a_batch_cancels_its_runs_and_the_rest(
    client: Client, settings: Settings, prepared_clip: Path
) -> None:
    settings.batch_concurrency = 1
    provider = SleepyProvider(prepared_clip, 5.0)
    async with live_stack(client, settings, {"sleepy": provider}, "alice") as api:
        answer = await api.http.post(
            "/v1/batches", json={"items": [item(f"run {n}", 2) for n in range(3)]}
        )
        assert answer.status_code == 202, answer.text
        batch_id, ids = answer.json()["id"], answer.json()["generations"]
        await wait_for(lambda: provider.log.running > 0, "the first run's clips")
        answer = await api.http.post(f"/v1/batches/{batch_id}/cancel")
        assert answer.status_code == 202, answer.text
        final = await wait_for(lambda: _ended(api, batch_id), "the batch to end", every=0.3)
        assert final["status"] == "cancelled"
        assert final["counts"] == {"cancelled": 3}, final
        assert await own_statuses(api, ids) == Counter({"cancelled": 3})
        assert provider.log.cancels, "the running clip was not cancelled upstream"
