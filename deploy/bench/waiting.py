"""B9: waiting reads. ``GET /v1/generations/{id}?wait=30`` with the ETag last seen answers
within 1 s of a status change, and within N + 1 s when nothing changes.

Each run is started with ``review: "storyboard"``, so it stops in ``awaiting_approval`` where
nothing changes until a person approves: there one waiting read of ``idle_wait`` seconds is
timed (it must answer after its N seconds, unchanged, and not much later), and then a waiter
with ``?wait=30`` is left waiting while the run is approved: the figure is the time from
sending the approval to the waiter's answer. That bounds the latency from above, as it also
holds the workflow taking the signal and recording the new status. The rest of the run is
followed with waiting reads only; each answer with a new status is timed from that status's
``updated_at`` (the workflow's clock at the change), for information.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from datetime import UTC, datetime
from typing import Any

import httpx
from harness import Stack

from storyreel.contracts import GenerationRequest

ENDED = {"completed", "failed", "cancelled"}
WAIT = 30  # the waiter's ?wait= while the run is approved
WAKE_TARGET = 1.0  # seconds from a status change to the waiter's answer
RUN_SECONDS = 300.0  # a run still going after this long is cancelled (and not completed)


async def waiting_read(
    http: httpx.AsyncClient, gid: str, wait: float, tag: str | None
) -> tuple[float, dict[str, Any], str]:
    """One ``?wait=`` read from ``tag``: how long it took, the view and its ETag."""
    headers = {"If-None-Match": tag} if tag else {}
    began = time.monotonic()
    answer = await http.get(f"/v1/generations/{gid}", params={"wait": wait}, headers=headers)
    answer.raise_for_status()
    return time.monotonic() - began, answer.json(), answer.headers["etag"]


async def one_run(
    http: httpx.AsyncClient, body: dict[str, Any], idle_wait: float, results: dict[str, list[Any]]
) -> str:
    posted = await http.post("/v1/generations", json=body)
    posted.raise_for_status()
    gid: str = posted.json()["id"]
    tag: str | None = None
    status = ""
    deadline = time.monotonic() + RUN_SECONDS
    while status not in ENDED:
        _, view, tag = await waiting_read(http, gid, WAIT, tag)
        received = datetime.now(UTC)
        if view["status"] != status and status:
            changed = datetime.fromisoformat(view["updated_at"])
            results["status_changes"].append((received - changed).total_seconds())
        status = view["status"]
        if status == "awaiting_retry" or time.monotonic() > deadline:
            # A failed clip (or a stuck run) is not what B9 measures: let the run go.
            await http.post(f"/v1/generations/{gid}/cancel")
            deadline = float("inf")
            continue
        if status != "awaiting_approval":
            continue
        # Nothing changes here until approved: an idle waiting read answers after its N s.
        idle, still, same = await waiting_read(http, gid, idle_wait, tag)
        results["idle"].append(idle)
        results["idle_unchanged"].append(same == tag and still["status"] == status)
        # A waiter in flight, then the approval: how soon after it does the waiter answer?
        waiter = asyncio.create_task(waiting_read(http, gid, WAIT, tag))
        await asyncio.sleep(0.5)  # let the waiter's first read see awaiting_approval
        sent = time.monotonic()
        approved = await http.post(f"/v1/generations/{gid}/approve")
        approved.raise_for_status()
        _, view, tag = await waiter
        results["wake"].append(time.monotonic() - sent)
        status = view["status"]
    return status


async def b9(s: Stack, runs: int, idle_wait: float, request: Any) -> dict[str, Any]:
    """``request(count, provider, **extra)`` builds a run's body (bench.py's ``request``)."""
    await s.sim("POST", "/_sim/config", json={"latency": 1.0, "render": False})
    results: dict[str, list[Any]] = {
        "wake": [],
        "idle": [],
        "idle_unchanged": [],
        "status_changes": [],
        "statuses": [],
    }
    async with httpx.AsyncClient(base_url=s.api_url, timeout=WAIT + 30, headers=s.headers) as http:
        for _ in range(runs):
            made: GenerationRequest = request(2, "simulator", review="storyboard")
            body = made.model_dump(mode="json", exclude_none=True)
            results["statuses"].append(await one_run(http, body, idle_wait, results))
    wake, idle = results["wake"], results["idle"]
    wake_ok = bool(wake) and max(wake) <= WAKE_TARGET
    idle_ok = (
        bool(idle)
        and all(results["idle_unchanged"])
        and all(idle_wait - 0.05 <= seconds <= idle_wait + 1 for seconds in idle)
    )
    return {
        **results,
        "runs": runs,
        "wait": WAIT,
        "idle_wait": idle_wait,
        "wake_worst": max(wake, default=float("nan")),
        "wake_median": statistics.median(wake) if wake else float("nan"),
        "idle_worst": max(idle, default=float("nan")),
        "status_change_worst": max(results["status_changes"], default=float("nan")),
        "completed": results["statuses"].count("completed"),
        "wake_ok": wake_ok,
        "idle_ok": idle_ok,
    }
