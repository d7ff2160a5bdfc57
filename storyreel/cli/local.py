"""The local stack: ``storyreel up`` (the embedded stack and its demo), API keys, the
simulator."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from importlib import resources
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer

from storyreel.cli.core import Api, app, console, fail, local_key
from storyreel.cli.runs import follow, report
from storyreel.settings import Settings, get_settings
from storyreel.stack import Ports, Stack, StackError

if TYPE_CHECKING:
    from storyreel.db import Records


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


def open_records(settings: Settings) -> Records:
    """The stack's records. The database's modules (SQLAlchemy, Alembic: most of a second) load
    here, for the commands that write records, not for every command the CLI runs."""
    from storyreel.db import open_records as opened

    return opened(settings)


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
