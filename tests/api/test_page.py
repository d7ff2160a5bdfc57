"""The progress page in a real browser (Playwright driving Debian's Chromium)."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from playwright.async_api import async_playwright, expect

from tests.api.conftest import LiveApi
from tests.fakes import FlakyProvider

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
CHROMIUM = os.environ.get("STORYREEL_TEST_CHROMIUM") or shutil.which("chromium") or ""


def chromium_or_skip() -> str:
    if CHROMIUM:
        return CHROMIUM
    if os.environ.get("CI"):
        pytest.fail("Chromium is required in CI (apt-get install chromium)")
    pytest.skip("no chromium on this machine")


async def test_submit_a_script_and_watch_every_bar_fill(live_api: LiveApi) -> None:
    executable = chromium_or_skip()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable,
            args=BROWSER_ARGS,
        )
        try:
            page = await browser.new_page()
            await page.goto(f"{live_api.url}/#key={live_api.key}")
            await page.fill("#title", "Three gulls")
            await page.fill(
                "#script",
                "A gull lands on the pier. Another gull steals its bread. The third one laughs.",
            )
            await page.select_option("#platform", "youtube")
            await page.click("#submit")

            clips = page.locator(".clip")
            await expect(clips).to_have_count(3, timeout=60_000)
            await expect(page.locator("#temporal")).to_have_attribute(
                "href", re.compile(r"/namespaces/default/workflows/gen-")
            )
            for index in range(3):
                row = clips.nth(index)
                await expect(row).to_have_attribute("data-status", "complete", timeout=120_000)
                await expect(row.locator(".pct")).to_have_text("100%")
            player = page.locator("#player")
            await expect(player).to_be_visible(timeout=60_000)
            await expect(page.locator("#status")).to_have_text("completed")
            source = await player.get_attribute("src")
            assert source and source.endswith("/video")
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "progress-page.png"), full_page=True)
        finally:
            await browser.close()


async def test_a_failed_clip_shows_its_error_and_the_retry_button_heals_it(
    live_api: LiveApi, flaky: FlakyProvider
) -> None:
    executable = chromium_or_skip()
    body = {
        "title": "Flaky harbour",
        "scenes": [{"description": f"Scene {n}", "duration": 2} for n in range(1, 4)],
        "platform": "youtube",
        "provider": "flaky",
    }
    gid = (await live_api.http.post("/v1/generations", json=body)).json()["id"]
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=BROWSER_ARGS)
        try:
            page = await browser.new_page()
            await page.goto(f"{live_api.url}/?id={gid}#key={live_api.key}")
            failed = page.locator('.clip[data-id="2"]')
            await expect(failed).to_have_attribute("data-status", "failed", timeout=120_000)
            await expect(failed.locator(".error")).to_contain_text("upstream exploded")
            await expect(page.locator("#status")).to_have_text("awaiting_retry")
            flaky.heal()
            await failed.locator("button.retry").click()
            await expect(failed).to_have_attribute("data-status", "complete", timeout=120_000)
            await expect(page.locator("#player")).to_be_visible(timeout=60_000)
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "progress-page-retry.png"), full_page=True)
        finally:
            await browser.close()
