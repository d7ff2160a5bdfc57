"""``storyreel batch``: many generations from a JSON Lines file or a folder of scripts."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from storyreel.cli.core import ENDED, Api, app, bars_of, console, fail, see_through
from storyreel.cli.runs import read_request


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
