"""``storyreel batch``: JSON Lines or a folder of scripts, one bar, a summary table."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from temporalio.client import Client
from typer.testing import CliRunner

from activities.providers import LocalClipProvider
from storyreel import cli
from storyreel.settings import Settings, get_settings
from tests.api.conftest import live_stack


def test_a_folder_of_scripts_is_one_request_each(tmp_path: Path) -> None:
    (tmp_path / "harbour-dawn.txt").write_text("The harbour wakes. Gulls circle.")
    (tmp_path / "night_shift.txt").write_text("The keeper climbs the stairs.")
    (tmp_path / "notes.md").write_text("not a script")
    items = cli.read_batch(tmp_path, "youtube")
    assert [item["title"] for item in items] == ["Harbour dawn", "Night shift"]
    assert all(item["platform"] == "youtube" and "script" in item for item in items)


async def test_batch_wait_follows_to_a_summary(
    client: Client, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = [
        {
            "title": f"Line {n}",
            "scenes": [{"description": f"Line {n}: the tide turns", "duration": 2}],
            "platform": "youtube",
            "captions": False,
        }
        for n in range(2)
    ]
    source = tmp_path / "requests.jsonl"
    source.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    async with live_stack(client, settings, {"local": LocalClipProvider()}, "alice") as api:
        monkeypatch.setenv("STORYREEL_API_URL", api.url)
        monkeypatch.setenv("STORYREEL_API_KEY", api.key)
        get_settings.cache_clear()
        try:
            result = await asyncio.to_thread(
                CliRunner().invoke,
                cli.app,
                ["batch", str(source), "--wait", "--title", "Tides"],
                env={"COLUMNS": "200"},
            )
        finally:
            get_settings.cache_clear()
        batches = (await api.http.get("/v1/batches")).json()["items"]
    assert result.exit_code == 0, result.output
    assert "2 generations" in result.output
    assert result.output.count("completed") >= 3, result.output  # two rows and the batch
    assert "Line 0" in result.output and "Line 1" in result.output
    assert [batch["title"] for batch in batches] == ["Tides"]
