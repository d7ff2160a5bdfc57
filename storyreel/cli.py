"""The ``storyreel`` command: the embedded stack, and generations from the terminal."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import anyio
import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn
from rich.table import Table

from storyreel.db import open_records
from storyreel.settings import Settings, get_settings
from storyreel.stack import Ports, Stack, StackError

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False)
console = Console(soft_wrap=True)
ENDED = {"completed", "failed", "cancelled"}


def fail(message: str) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}")
    return typer.Exit(code=1)


def local_key(settings: Settings) -> str | None:
    """The key to send: STORYREEL_API_KEY, else the one 'storyreel up' wrote to the data dir."""
    if settings.api_key is not None:
        return settings.api_key.get_secret_value()
    try:
        return settings.api_key_file.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


class Api:
    """The storyreel HTTP API, with errors turned into one clear line."""

    def __init__(self, base_url: str | None = None, key: str | None = None) -> None:
        settings = get_settings()
        self.base_url = (base_url or settings.api_url).rstrip("/")
        self.key = key or local_key(settings)

    def __call__(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        try:
            answer = httpx.request(
                method, f"{self.base_url}{path}", timeout=30.0, headers=headers, **kwargs
            )
        except httpx.HTTPError as error:
            raise fail(f"cannot reach the API at {self.base_url}: {error}") from None
        if answer.status_code >= 400:
            try:
                detail = answer.json().get("detail", answer.text)
            except ValueError:
                detail = answer.text
            text = detail if isinstance(detail, str) else json.dumps(detail)
            raise fail(f"{answer.status_code}: {text}")
        return answer.json()


def bars_of(*columns: str) -> Progress:
    """Progress bars: a name, the bar, then ``columns`` (rich format strings)."""
    texts = [TextColumn(column) for column in columns]
    return Progress(TextColumn("{task.description}"), BarColumn(), *texts, console=console)


def see_through(
    api: Api,
    started: str,
    follow_it: Callable[[Api, str], dict[str, Any]],
    report_it: Callable[[Api, dict[str, Any]], None],
) -> None:
    """Follow what was started to its end and report it; exit 1 unless it completed."""
    view = follow_it(api, started)
    report_it(api, view)
    if view["status"] != "completed":
        raise typer.Exit(code=1)


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


def read_batch(source: Path, platform: str | None) -> list[dict[str, Any]]:
    """Requests from a JSON Lines file (one request body a line) or a folder of scripts."""
    if source.is_dir():
        scripts = sorted(source.glob("*.txt"))
        if not scripts:
            raise fail(f"{source} has no .txt scripts")
        return [read_request(script, None, platform) for script in scripts]
    if not source.is_file():
        raise fail(f"no such file or folder: {source}")
    items: list[dict[str, Any]] = []
    for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as error:
            raise fail(f"{source}:{number} is not valid JSON: {error}") from None
        if not isinstance(item, dict):
            raise fail(f"{source}:{number} is not a request object")
        if platform:
            item["platform"] = platform
        items.append(item)
    if not items:
        raise fail(f"{source} has no requests")
    return items


def follow_batch(api: Api, batch_id: str) -> dict[str, Any]:
    """One bar for the whole batch, until every generation has ended."""
    with bars_of("{task.completed}/{task.total}", "{task.fields[counts]}") as progress:
        bar = progress.add_task("batch", total=1, counts="")
        while True:
            view = api("GET", f"/v1/batches/{batch_id}")
            counts = view["counts"]
            ended = sum(count for status, count in counts.items() if status in ENDED)
            progress.update(
                bar,
                total=view["total"],
                completed=ended,
                counts=", ".join(f"{count} {status}" for status, count in sorted(counts.items())),
            )
            if view["status"] != "running":
                return dict(view)
            time.sleep(1.0)


def batch_summary(api: Api, view: dict[str, Any]) -> None:
    table = Table("generation", "title", "status", "duration", "cost", "error")
    for generation_id in view["generations"]:
        run = api("GET", f"/v1/generations/{generation_id}")
        duration = f"{run['duration']:.1f} s" if run.get("duration") else ""
        table.add_row(
            generation_id,
            run["title"],
            run["status"],
            duration,
            f"{run['cost']:.2f}",
            run.get("error") or "",
        )
    console.print(table)
    console.print(f"Batch {view['id']}: {view['status']}")


@app.command()
def batch(
    source: Annotated[
        Path, typer.Argument(help="JSON Lines of request bodies, or a folder of .txt scripts.")
    ],
    wait: Annotated[bool, typer.Option("--wait", help="Follow it to the end.")] = False,
    title: Annotated[str | None, typer.Option(help="The batch's title.")] = None,
    platform: Annotated[str | None, typer.Option(help="Platform for every item.")] = None,
) -> None:
    """Start many generations at once (batch priority: runs started one by one go first)."""
    api = Api()
    body: dict[str, Any] = {"items": read_batch(source, platform)}
    if title:
        body["title"] = title
    accepted = api("POST", "/v1/batches", json=body)
    console.print(f"Batch {accepted['id']} started: {accepted['total']} generations")
    if wait:
        see_through(api, accepted["id"], follow_batch, batch_summary)


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
    if not listed["webhook"] and not listed["items"]:
        return
    console.print(f"Webhook: {listed['webhook']}")
    table = Table("delivery", "event", "attempt", "answer", "at")
    for item in listed["items"]:
        answer = str(item["status_code"]) if item["status_code"] is not None else ""
        if item.get("error") and not item["delivered"]:
            answer = item["error"]
        table.add_row(
            item["delivery_id"], item["type"], str(item["attempt"]), answer, item["created_at"]
        )
    if listed["items"]:
        console.print(table)
    else:
        console.print("No delivery yet.")


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


def describe(error: BaseException) -> str:
    """The innermost message of an error (task groups wrap what failed in a group)."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return f"{type(error).__name__}: {error}"


@app.command(
    context_settings={
        "allow_extra_args": True,
        "ignore_unknown_options": True,
        "help_option_names": [],
    }
)
def simulator(ctx: typer.Context) -> None:
    """Run the Replicate-protocol simulator: --port N --latency S --jitter S --fail-rate P
    --refuse-rate P --hang-rate P --error-rate P --malformed-rate P --rate-limit N/min
    --seed N --no-render (see 'storyreel simulator --help')."""
    command = [sys.executable, "-m", "activities.simulator", *ctx.args]
    os.execv(command[0], command)


def settings_for(data_dir: Path | None) -> Settings:
    settings = get_settings()
    if data_dir is None:
        return settings
    return settings.model_copy(update={"data_dir": data_dir.resolve()})


def ensure_local_key(settings: Settings) -> str:
    """The local user's key, kept in the data dir (0600) so the CLI and page need no paste."""
    records = open_records(settings)
    try:
        if (existing := local_key(settings)) and records.user_for_key(existing) is not None:
            return existing
        key = records.create_api_key(records.create_user("local"))
    finally:
        records.dispose()
    path = settings.api_key_file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(key + "\n", encoding="utf-8")
    return key


keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
def keys_create(
    user: Annotated[str, typer.Argument(help="User name (created if new).")],
    data_dir: Annotated[
        Path | None, typer.Option(help="Data dir of the stack (as for 'up').")
    ] = None,
) -> None:
    """Create an API key for USER; the key is printed once, on the last line."""
    records = open_records(settings_for(data_dir))
    try:
        key = records.create_api_key(records.create_user(user))
    finally:
        records.dispose()
    console.print(f"API key for {user} (shown once, store it safely):")
    print(key)


# Ctrl-C, a kill, or the terminal closing (SIGHUP): all three stop the stack in order.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _raise_interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _say(message: str) -> None:
    """Print, unless the terminal is gone (closing it is one way to stop 'up')."""
    with contextlib.suppress(OSError):
        console.print(message)


@app.command()
def up(
    data_dir: Annotated[Path, typer.Option(help="Media, records and Temporal state.")] = Path(
        ".storyreel"
    ),
    api_port: Annotated[int, typer.Option(help="API and progress page.")] = 8000,
    temporal_port: Annotated[int, typer.Option(help="Temporal frontend (gRPC).")] = 7233,
    ui_port: Annotated[int, typer.Option(help="Temporal Web UI.")] = 8233,
    simulator_port: Annotated[
        int, typer.Option(help="Replicate-protocol simulator (unless STORYREEL_SIMULATOR_URL).")
    ] = 8090,
    demo: Annotated[bool, typer.Option(help="Generate the bundled example first.")] = True,
) -> None:
    """Run the whole stack here: Temporal dev server + Web UI, worker, API. Ctrl-C stops all."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, _raise_interrupt)
    settings = settings_for(data_dir)
    external = settings.simulator_url
    stack = Stack(
        data_dir.resolve(),
        Ports(
            api=api_port,
            temporal=temporal_port,
            ui=ui_port,
            simulator=None if external else simulator_port,
        ),
        simulator_url=external,
    )
    try:
        if cleared := stack.clear_stale():
            console.print(
                f"Cleared a stale stack of {stack.data_dir} "
                f"(left by a crash or an older version): stopped {', '.join(cleared)}"
            )
        key = ensure_local_key(settings)
        console.print("Starting Temporal, the worker and the API…")
        stack.start()
        console.print(f"API:             {stack.api_url}/docs")
        # The key rides in the fragment: the browser keeps it, the server never logs it.
        console.print(f"Progress page:   {stack.api_url}/#key={key}")
        console.print(f"API key:         in {settings.api_key_file} (the CLI uses it)")
        console.print(f"Temporal Web UI: {stack.ui_url}")
        console.print(f"Logs:            {stack.log_dir}")
        if demo:
            _demo(stack, key)
        console.print("Serving. Press Ctrl-C to stop.")
        for _ in stack.watch():
            pass
    except StackError as error:
        raise fail(str(error)) from None
    except KeyboardInterrupt:
        _say("Stopping…")
    finally:
        # A second signal (the terminal's SIGHUP after a Ctrl-C, say) must not cut the stop short.
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
        stack.stop()


def _demo(stack: Stack, key: str) -> None:
    script = resources.files("storyreel").joinpath("examples/lighthouse.txt").read_text("utf-8")
    body = {
        "title": "The last watch",
        "script": script,
        "platform": "tiktok",
        "consistency_context": "Soft watercolour, warm dawn light, the same old keeper",
    }
    api = Api(stack.api_url, key)
    accepted = api("POST", "/v1/generations", json=body)
    console.print(
        f"Generating the example ({accepted['id']}); "
        f"watch it on {stack.api_url}/#run={accepted['id']}"
    )
    view = follow(api, accepted["id"])
    path = stack.data_dir / "media" / "generations" / view["id"] / "video.mp4"
    report(api, view, path if view["status"] == "completed" else None)


def main() -> None:
    app()
