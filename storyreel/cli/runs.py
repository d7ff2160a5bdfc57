"""Commands on one generation: start and follow it, read it, steer it, your uploads, and
the MCP bridge for local agents."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import anyio
import typer
from rich.console import Console
from rich.progress import TaskID
from rich.table import Column, Table

from storyreel.cli.core import (
    ENDED,
    Api,
    app,
    bars_of,
    console,
    describe,
    fail,
    local_key,
    see_through,
)
from storyreel.settings import get_settings


def follow(api: Api, generation_id: str) -> dict[str, Any]:
    """One progress bar per clip, all moving at once, until the run ends."""
    bars: dict[int, TaskID] = {}
    with bars_of("{task.percentage:>5.1f}%", "{task.fields[status]}") as progress:
        overall = progress.add_task("generation", total=1, status="queued")
        while True:
            view = api("GET", f"/v1/generations/{generation_id}")
            stage = f" ({view['stage']})" if view.get("stage") else ""
            done = sum(clip["status"] in ("complete", "cached") for clip in view["clips"])
            progress.update(
                overall,
                total=max(1, len(view["clips"])),
                completed=done,
                status=f"{view['status']}{stage}",
            )
            for clip in view["clips"]:
                if clip["clip_id"] not in bars:
                    bars[clip["clip_id"]] = progress.add_task(
                        f"clip {clip['clip_id']}", total=100, status=clip["status"]
                    )
                status = clip["status"] + (f": {clip['error']}" if clip.get("error") else "")
                progress.update(bars[clip["clip_id"]], completed=clip["progress"], status=status)
            if view["status"] in ENDED or view["status"] == "awaiting_retry":
                return dict(view)
            time.sleep(0.5)


def report(api: Api, view: dict[str, Any], video_path: Path | None = None) -> None:
    if view["status"] == "completed":
        where = video_path if video_path else f"{api.base_url}{view['video_url']}"
        console.print(f"Video ready: {where}")
        speedup = view["clip_stage"].get("speedup")
        if speedup:
            console.print(
                f"Clip stage: {view['clip_stage']['wall_seconds']:.1f} s wall, "
                f"{speedup:.2f}x faster than one clip after another"
            )
    elif view["status"] == "awaiting_retry":
        console.print(
            "[yellow]Some clips failed[/yellow]: retry them with "
            f"'storyreel retry {view['id']} CLIP', finish without them with "
            f"'storyreel finish {view['id']}', or cancel the run."
        )
    else:
        console.print(f"[red]Generation {view['status']}[/red]: {view.get('error') or ''}")
    console.print(f"Temporal Web UI: {view['links']['temporal_ui']}")


def read_request(file: Path, title: str | None, platform: str | None) -> dict[str, Any]:
    if not file.is_file():
        raise fail(f"no such file: {file}")
    text = file.read_text(encoding="utf-8")
    if file.suffix == ".json":
        try:
            body: dict[str, Any] = json.loads(text)
        except json.JSONDecodeError as error:
            raise fail(f"{file} is not valid JSON: {error}") from None
    else:
        body = {"title": file.stem.replace("-", " ").replace("_", " ").capitalize(), "script": text}
    if title:
        body["title"] = title
    if platform:
        body["platform"] = platform
    return body


@app.command()
def generate(
    file: Annotated[Path, typer.Argument(help="A script (.txt) or a request body (.json).")],
    wait: Annotated[bool, typer.Option("--wait", help="Show live progress until it ends.")] = False,
    title: Annotated[str | None, typer.Option(help="Title (default: from the file).")] = None,
    platform: Annotated[str | None, typer.Option(help="tiktok, youtube, ...")] = None,
) -> None:
    """Start a generation from a file."""
    api = Api()
    accepted = api("POST", "/v1/generations", json=read_request(file, title, platform))
    console.print(f"Generation {accepted['id']} started")
    console.print(f"Temporal Web UI: {accepted['links']['temporal_ui']}")
    if wait:
        see_through(api, accepted["id"], follow, report)


@app.command()
def status(generation_id: Annotated[str, typer.Argument(help="Generation id.")]) -> None:
    """Show where a generation stands."""
    api = Api()
    view = api("GET", f"/v1/generations/{generation_id}")
    console.print(f"[bold]{view['title']}[/bold]: {view['status']} ({view.get('stage') or '-'})")
    if view["status"] == "awaiting_approval":
        # Nothing is paid for yet: what a reviewer decides on is the scenes, not the clips.
        quote = view.get("quote")
        billed = {s["index"]: s["billed_seconds"] for s in quote["scenes"]} if quote else {}
        scenes = Table(
            "scene", "seconds", "billed", "what the camera sees", "what is said", "caption"
        )
        for scene in view["scenes"]:
            scenes.add_row(
                str(scene["index"]),
                f"{scene['duration']:.1f}",
                f"{billed[scene['index']]:g}" if scene["index"] in billed else "",
                scene["description"],
                scene.get("narration") or "",
                scene.get("caption") or "",
            )
        console.print(scenes)
        if quote:
            makes = (
                "" if quote["lengths"] == "any length" else f" (it makes {quote['lengths']} clips)"
            )
            console.print(
                f"Quote: about ${quote['cost']:.2f} for {quote['billed_seconds']:g} s of clips on "
                f"{quote['provider']}/{quote['model']}{makes}"
            )
        console.print(
            f"Change a scene: storyreel edit {generation_id} SCENE --description ...; "
            f"start the clips: storyreel approve {generation_id}"
        )
        print_deliveries(api, generation_id)
        return
    table = Table("clip", "status", "progress", "attempts", "error")
    for clip in view["clips"]:
        table.add_row(
            str(clip["clip_id"]),
            clip["status"],
            f"{clip['progress']:.0f}%",
            str(clip["attempts"]),
            clip.get("error") or "",
        )
    console.print(table)
    if view.get("video_url"):
        console.print(f"Video: {api.base_url}{view['video_url']}")
    print_deliveries(api, generation_id)


def print_deliveries(api: Api, generation_id: str) -> None:
    """The run's webhook deliveries, when it has a webhook: every attempt at each event."""
    listed = api("GET", f"/v1/generations/{generation_id}/deliveries")
    items: list[dict[str, Any]] = listed["items"]
    if not listed["webhook"] and not items:
        return
    console.print(f"Webhook: {listed['webhook']}")
    if not items:
        console.print("No delivery yet.")
        return
    # The id (what the redeliver route takes) and the event type are never cut, whatever the
    # width: the answer gives way.
    table = Table(
        Column("delivery", no_wrap=True, min_width=max(len(i["delivery_id"]) for i in items)),
        Column("event", no_wrap=True, min_width=max(len(i["type"]) for i in items)),
        "attempt",
        "answer",
        "at",
    )
    for item in items:
        answer = str(item["status_code"]) if item["status_code"] is not None else ""
        if item.get("error") and not item["delivered"]:
            answer = item["error"]
        table.add_row(
            item["delivery_id"], item["type"], str(item["attempt"]), answer, item["created_at"]
        )
    console.print(table)


@app.command()
def retry(
    generation_id: Annotated[str, typer.Argument(help="Generation id.")],
    clip: Annotated[int, typer.Argument(help="Clip id (1-based scene index).")],
    prompt: Annotated[str | None, typer.Option(help="A new prompt for the clip.")] = None,
) -> None:
    """Generate a failed clip again."""
    Api()("POST", f"/v1/generations/{generation_id}/clips/{clip}/retry", json={"prompt": prompt})
    console.print(f"Clip {clip} of {generation_id} queued again")


@app.command()
def finish(generation_id: Annotated[str, typer.Argument(help="Generation id.")]) -> None:
    """Finish a run waiting on failed clips without them (it must be awaiting_retry)."""
    Api()("POST", f"/v1/generations/{generation_id}/finish")
    console.print(f"Generation {generation_id} is being assembled without its failed clips")


@app.command()
def approve(generation_id: Annotated[str, typer.Argument(help="Generation id.")]) -> None:
    """Approve the storyboard of a run awaiting approval: its clips start now."""
    Api()("POST", f"/v1/generations/{generation_id}/approve")
    console.print(f"Generation {generation_id} approved: its clips are starting")


@app.command()
def edit(
    generation_id: Annotated[str, typer.Argument(help="Generation id.")],
    scene: Annotated[int, typer.Argument(help="1-based scene index.", min=1)],
    description: Annotated[
        str | None, typer.Option(help="What the camera sees (redraws the storyboard image).")
    ] = None,
    narration: Annotated[str | None, typer.Option(help="What is said over the scene.")] = None,
    caption: Annotated[str | None, typer.Option(help="The caption drawn on the scene.")] = None,
    duration: Annotated[float | None, typer.Option(help="Seconds, 2-10.", min=2, max=10)] = None,
) -> None:
    """Edit one scene of a run awaiting approval."""
    changes = {
        name: value
        for name, value in (
            ("description", description),
            ("narration", narration),
            ("caption", caption),
            ("duration", duration),
        )
        if value is not None
    }
    if not changes:
        raise typer.BadParameter("give --description, --narration, --caption or --duration")
    Api()("POST", f"/v1/generations/{generation_id}/scenes/{scene}", json=changes)
    console.print(f"Scene {scene} of {generation_id} is being changed")


def _asset_line(asset: dict[str, Any]) -> str:
    length = f"{asset['duration']:g} s" if asset.get("duration") else ""
    size = f"{asset['width']}x{asset['height']}" if asset.get("width") else ""
    facts = "  ".join(part for part in (asset["kind"], length, size, asset["name"]) if part)
    return f"{asset['id']}  {facts}"


@app.command()
def upload(
    file: Annotated[
        Path, typer.Argument(help="An image, video or sound file.", exists=True, dir_okay=False)
    ],
) -> None:
    """Upload your own picture, footage or sound; prints the asset id to give as a scene's
    ``asset`` (video, image) or as ``music`` (sound)."""
    with file.open("rb") as handle:
        asset = Api()("POST", "/v1/assets", files={"file": (file.name, handle)})
    console.print(_asset_line(asset))


@app.command()
def assets() -> None:
    """List your uploaded assets, newest first."""
    for asset in Api()("GET", "/v1/assets"):
        console.print(_asset_line(asset))


@app.command()
def cancel(generation_id: Annotated[str, typer.Argument(help="Generation id.")]) -> None:
    """Cancel a generation."""
    Api()("POST", f"/v1/generations/{generation_id}/cancel")
    console.print(f"Generation {generation_id} is being cancelled")


@app.command("mcp")
def mcp_stdio(
    api_url: Annotated[
        str | None, typer.Option(help="The API (default: STORYREEL_API_URL, or 'up''s).")
    ] = None,
) -> None:
    """Serve MCP on stdio for a local agent (Claude Desktop, Cursor...): the tools of the
    API's /mcp, called with the CLI's key (STORYREEL_API_KEY, or the one 'up' wrote)."""
    # stdout is the protocol: whatever goes wrong is said on stderr.
    errors = Console(stderr=True)
    settings = get_settings()
    key = local_key(settings)
    if key is None:
        errors.print(
            "[red]error:[/red] no API key: set STORYREEL_API_KEY, or run 'storyreel up' first"
        )
        raise typer.Exit(code=1)
    url = f"{(api_url or settings.api_url).rstrip('/')}/mcp"
    from storyreel.mcp_bridge import serve_stdio  # the SDK only for this command (startup)

    try:
        anyio.run(serve_stdio, url, key)
    except Exception as error:  # the API unreachable, the key refused: one line, exit 1
        errors.print(f"[red]error:[/red] MCP at {url}: {describe(error)}")
        raise typer.Exit(code=1) from None
