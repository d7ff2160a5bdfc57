"""The ``storyreel`` command's common parts: the Typer app, the console, errors as one
clear line, and the API client the commands share."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn

from storyreel.settings import Settings, get_settings

app = typer.Typer(
    help="The storyreel command: the embedded stack, and generations from the terminal.",
    no_args_is_help=True,
    add_completion=False,
)
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


def describe(error: BaseException) -> str:
    """The innermost message of an error (task groups wrap what failed in a group)."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return f"{type(error).__name__}: {error}"
