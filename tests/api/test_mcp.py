"""Agents over MCP, with the official client (``mcp`` ``ClientSession``), on the real stack:
streamable HTTP against the API's ``/mcp``, and stdio against ``storyreel mcp`` (a subprocess
bridging to it with the CLI's key). Both drive the same scenario: list the tools, create a
video and wait for it with ``get_video(wait_seconds)`` while progress arrives, review and
approve a storyboard, retry a failed clip; another user's run is not found and a bad argument
is a readable tool error, after which the session goes on working."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import ClientSession, MCPError, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import BlobResourceContents, CallToolResult, TextContent, TextResourceContents

from tests.api.conftest import LiveApi
from tests.api.test_generations import body, poll_until
from tests.conftest import clean_env
from tests.fakes import FlakyProvider

TOOLS = {
    "create_video",
    "get_video",
    "list_videos",
    "approve_storyboard",
    "edit_scene",
    "retry_clip",
    "finish_without_failed",
    "cancel_video",
    "create_batch",
    "get_batch",
}
ENDED = {"completed", "failed", "cancelled"}


@asynccontextmanager
async def over_http(api: LiveApi, key: str) -> AsyncIterator[ClientSession]:
    headers = {"Authorization": f"Bearer {key}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=300)) as http,
        streamable_http_client(f"{api.url}/mcp", http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


@asynccontextmanager
async def over_stdio(api: LiveApi, key: str) -> AsyncIterator[ClientSession]:
    """``storyreel mcp`` as an agent starts it: from its config, the API and key in the env."""
    env = clean_env()
    env.update(STORYREEL_API_URL=api.url, STORYREEL_API_KEY=key)
    command = str(Path(sys.executable).parent / "storyreel")
    params = StdioServerParameters(command=command, args=["mcp"], env=env)
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


TRANSPORTS = {"http": over_http, "stdio": over_stdio}


async def call(session: ClientSession, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await session.call_tool(tool, arguments)
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    return dict(result.structured_content)


async def refused(session: ClientSession, tool: str, **arguments: Any) -> str:
    result = await session.call_tool(tool, arguments)
    assert result.is_error, result
    return text_of(result)


def text_of(result: CallToolResult) -> str:
    return " ".join(part.text for part in result.content if isinstance(part, TextContent))


async def wait_until(
    session: ClientSession, gid: str, statuses: set[str], notes: list[str]
) -> dict[str, Any]:
    """``get_video(wait_seconds)`` again and again, each from the etag the last one gave,
    until the run is in one of ``statuses``; progress messages land in ``notes``."""

    async def progress(progress: float, total: float | None, message: str | None) -> None:
        assert total is None or progress <= total
        notes.append(message or "")

    deadline = time.monotonic() + 180
    arguments: dict[str, Any] = {"generation_id": gid, "wait_seconds": 30}
    while True:
        result = await session.call_tool("get_video", arguments, progress_callback=progress)
        assert not result.is_error, text_of(result)
        assert result.structured_content is not None
        view = dict(result.structured_content)
        if view["status"] in statuses:
            return view
        assert view["status"] not in ENDED, view
        assert time.monotonic() < deadline, f"{gid} never reached {statuses}: {view['status']}"
        arguments["since"] = view["etag"]


@pytest.mark.parametrize("transport", list(TRANSPORTS))
async def test_an_agent_makes_reviews_and_mends_videos_over_mcp(
    live_api: LiveApi, flaky: FlakyProvider, transport: str
) -> None:
    api = live_api
    # Someone else's run, reviewed so it waits cheaply: it must not exist for this agent.
    async with api.new_user("mallory") as mallory:
        posted = await mallory.post("/v1/generations", json=body("local", 1, review="storyboard"))
        assert posted.status_code == 202, posted.text
        theirs = posted.json()["id"]

    async with TRANSPORTS[transport](api, api.key) as session:
        listed = await session.list_tools()
        assert {tool.name for tool in listed.tools} == TOOLS
        create = next(tool for tool in listed.tools if tool.name == "create_video")
        assert create.input_schema["required"] == ["request"]
        assert create.output_schema is not None and "quote" in create.output_schema["properties"]
        templates = await session.list_resource_templates()
        assert {t.uri_template for t in templates.resource_templates} == {
            "storyreel://generations/{generation_id}/video",
            "storyreel://generations/{generation_id}/storyboard/{index}",
        }

        # Create, then wait with get_video until completed: progress arrives meanwhile.
        started = await call(session, "create_video", request=body("local", 2))
        gid = started["id"]
        assert started["quote"]["billed_seconds"] == 4 and started["status"] == "queued"
        notes: list[str] = []
        final = await wait_until(session, gid, {"completed"}, notes)
        assert [clip["status"] for clip in final["clips"]] == ["complete", "complete"]
        assert any(note.startswith("generating") for note in notes), notes
        assert any(note.startswith("clip ") for note in notes), notes

        # Its resources: where the video is, and the storyboard images themselves.
        read = await session.read_resource(f"storyreel://generations/{gid}/video")
        assert isinstance(read.contents[0], TextResourceContents)
        video = json.loads(read.contents[0].text)
        assert video["url"] == f"{api.url}/v1/generations/{gid}/video"
        fetched = await api.http.get(video["url"])
        assert fetched.status_code == 200 and fetched.content[4:8] == b"ftyp"
        read = await session.read_resource(f"storyreel://generations/{gid}/storyboard/1")
        image = read.contents[0]
        assert isinstance(image, BlobResourceContents) and image.mime_type == "image/png"
        assert base64.b64decode(image.blob)[:8] == b"\x89PNG\r\n\x1a\n"

        # A reviewed run waits for approval; approved, its clip 2 fails until healed, and a
        # retry of it finishes the run.
        reviewed = await call(
            session, "create_video", request=body("flaky", 3, review="storyboard")
        )
        rid = reviewed["id"]
        waiting = await wait_until(session, rid, {"awaiting_approval"}, [])
        assert [scene["index"] for scene in waiting["scenes"]] == [1, 2, 3]
        assert flaky.log.submits == [], "a clip was paid for before approval"
        edited = await call(session, "edit_scene", generation_id=rid, scene=1, changes={
            "caption": "Dawn over the harbour"
        })  # fmt: skip
        assert edited == {"id": rid, "action": "edit_scene", "clip_id": 1}
        assert (await call(session, "approve_storyboard", generation_id=rid))["action"] == "approve"
        stuck = await wait_until(session, rid, {"awaiting_retry"}, [])
        assert [clip["status"] for clip in stuck["clips"]][1] == "failed"
        not_failed = await refused(session, "retry_clip", generation_id=rid, clip_id=1)
        assert "not failed" in not_failed
        flaky.heal()
        retried = await call(session, "retry_clip", generation_id=rid, clip_id=2, prompt="calm")
        assert retried == {"id": rid, "action": "retry_clip", "clip_id": 2}
        mended = await wait_until(session, rid, {"completed"}, [])
        assert mended["clips"][1]["prompt"] == "calm" and mended["scenes"][0]["caption"] == (
            "Dawn over the harbour"
        )

        # Another user's run does not exist here, whatever is asked of it.
        for tool in ("get_video", "approve_storyboard", "cancel_video"):
            assert "no generation" in await refused(session, tool, generation_id=theirs)
        with pytest.raises(MCPError, match="no generation"):
            await session.read_resource(f"storyreel://generations/{theirs}/storyboard/1")

        # Bad arguments and refused actions are tool errors with a message; the session lives.
        too_long = await refused(session, "get_video", generation_id=gid, wait_seconds=61)
        assert "wait_seconds" in too_long and "60" in too_long
        neither = await refused(session, "create_video", request={"title": "no script"})
        assert "give either 'script' or 'scenes'" in neither
        unknown = await refused(session, "create_video", request=body("nonesuch", 1))
        assert "unknown provider 'nonesuch'" in unknown
        ended = await refused(session, "approve_storyboard", generation_id=gid)
        assert "not awaiting_approval" in ended
        listed_runs = await call(session, "list_videos", limit=10)
        assert {item["id"] for item in listed_runs["items"]} == {gid, rid}


async def test_the_endpoint_needs_a_valid_key(live_api: LiveApi) -> None:
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
    async with httpx.AsyncClient(base_url=live_api.url, timeout=30) as anonymous:
        for headers in ({}, {"Authorization": "Bearer not-a-key"}):
            answer = await anonymous.post("/mcp", json=initialize, headers=headers)
            assert answer.status_code == 401, answer.text
            assert answer.headers["www-authenticate"] == "Bearer"
            assert "API key" in answer.json()["detail"]


async def test_a_batch_over_mcp_is_the_batch_of_the_api(live_api: LiveApi) -> None:
    async with over_http(live_api, live_api.key) as session:
        batch = await call(
            session, "create_batch", items=[body("local", 1), body("local", 1)], title="two"
        )
        assert batch["total"] == 2 and batch["title"] == "two"
        again = await call(session, "get_batch", batch_id=batch["id"])
        assert again["generations"] == batch["generations"]
        for gid in batch["generations"]:
            await poll_until(live_api, gid, ENDED, [])
        bad = await refused(session, "create_batch", items=[body("local", 1), body("nope", 1)])
        assert "items[1].provider: unknown provider 'nope'" in bad
        assert "no batch" in await refused(session, "get_batch", batch_id="batch-nope")


@pytest.mark.fast
def test_storyreel_mcp_without_a_key_says_so_on_stderr_not_on_the_protocol(
    tmp_path: Path,
) -> None:
    env = clean_env()
    env["STORYREEL_DATA_DIR"] = str(tmp_path)  # no key written there by 'storyreel up'
    run = subprocess.run(
        [str(Path(sys.executable).parent / "storyreel"), "mcp"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert run.returncode == 1 and run.stdout == ""
    assert "no API key" in run.stderr and "STORYREEL_API_KEY" in run.stderr
