"""The page in a real browser (Playwright driving Debian's Chromium) over the real stack."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, Page, async_playwright, expect

from api.cookies import SESSION_COOKIE
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


@asynccontextmanager
async def chromium() -> AsyncIterator[BrowserContext]:
    """One browser profile: its pages share cookies, as tabs do."""
    executable = chromium_or_skip()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=BROWSER_ARGS)
        try:
            yield await browser.new_context(viewport={"width": 1280, "height": 900})
        finally:
            await browser.close()


async def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / name), full_page=True)


async def run_page(browser: BrowserContext, api: LiveApi, gid: str) -> Page:
    """The page signed in with the API key (in the fragment, as `storyreel up` prints it) and
    showing run ``gid``."""
    page = await browser.new_page()
    await page.goto(f"{api.url}/#key={api.key}&run={gid}")
    return page


async def reaches(page: Page, status: str, timeout: float = 120_000) -> None:
    """The open run's status chip says ``status`` (within ``timeout`` ms)."""
    await expect(page.locator("#status")).to_have_attribute("data-status", status, timeout=timeout)


async def all_images_loaded(page: Page, selector: str) -> None:
    """Every image under ``selector`` has arrived (the cookie works for ``<img>``)."""
    await page.wait_for_function(
        """(selector) => {
            const images = [...document.querySelectorAll(selector)];
            return images.length > 0 && images.every((i) => i.complete && i.naturalWidth > 0);
        }""",
        arg=selector,
        timeout=30_000,
    )


FETCH = """async (url) => {
    const answer = await fetch(url, { cache: "no-store" });
    const bytes = new Uint8Array(await answer.arrayBuffer());
    return { status: answer.status, type: answer.headers.get("content-type"),
             magic: String.fromCharCode(...bytes.slice(4, 8)), size: bytes.length };
}"""


async def test_submit_watch_play_download_and_find_it_again(live_api: LiveApi) -> None:
    async with chromium() as browser:
        page = await browser.new_page()
        await page.goto(f"{live_api.url}/#key={live_api.key}")
        await expect(page.locator("#who")).to_have_text("alice")
        # The key was traded for an HttpOnly cookie and is gone from the address.
        assert live_api.key not in page.url
        cookies = await page.context.cookies()
        [session] = [cookie for cookie in cookies if cookie["name"] == SESSION_COOKIE]
        assert session["httpOnly"] and session["sameSite"] == "Strict"
        assert live_api.key not in session["value"]

        await page.fill("#title", "Three gulls")
        await page.fill(
            "#script",
            "A gull lands on the pier. Another gull steals its bread. The third one laughs.",
        )
        await page.select_option("#platform", "youtube")
        await page.click("#options summary")
        await page.select_option("#provider", "sleepy")
        await page.select_option("#transition", "dissolve")
        await page.click("#submit")

        clips = page.locator(".clip")
        await expect(clips).to_have_count(3, timeout=60_000)
        await expect(page.locator("#temporal")).to_have_attribute(
            "href", re.compile(r"/namespaces/default/workflows/gen-")
        )
        assert re.search(r"#run=gen-", page.url), page.url
        await expect(page.locator("#storyboard img")).to_have_count(3, timeout=60_000)
        await all_images_loaded(page, "#storyboard img")
        # Bars move while clips render.
        await page.wait_for_function(
            """() => [...document.querySelectorAll('.clip .pct')]
                 .some((p) => { const v = parseInt(p.textContent); return v > 0 && v < 100; })""",
            timeout=60_000,
        )
        await screenshot(page, "page-generating.png")
        for index in range(3):
            row = clips.nth(index)
            await expect(row).to_have_attribute("data-status", "complete", timeout=120_000)
            await expect(row.locator(".pct")).to_have_text("100%")
        player = page.locator("#player")
        await expect(player).to_be_visible(timeout=60_000)
        await expect(page.locator("#status")).to_have_attribute("data-status", "completed")

        # The video plays in the page: its clock advances.
        await player.evaluate("(video) => { video.muted = true; return video.play(); }")
        await page.wait_for_function(
            "() => document.querySelector('#player').currentTime > 0.5", timeout=30_000
        )
        href = await page.locator("#download").get_attribute("href")
        assert href and href.endswith("/video") and live_api.key not in href
        download = await page.evaluate(FETCH, href)
        assert download["status"] == 200 and download["type"] == "video/mp4"
        assert download["magic"] == "ftyp" and download["size"] > 10_000
        await screenshot(page, "page-completed.png")

        # A fresh load (no key in the address) lists the run by its title, with its thumbnail.
        # A new tab of the same browser: it has the cookie, not the key.
        fresh = await page.context.new_page()
        await fresh.goto(f"{live_api.url}/")
        entry = fresh.locator("#history li", has_text="Three gulls")
        await expect(entry).to_be_visible(timeout=30_000)
        await expect(entry.locator(".chip")).to_have_text("completed")
        await all_images_loaded(fresh, "#history li img")
        await entry.click()
        await expect(fresh.locator("#player")).to_be_visible()
        assert re.search(r"#run=gen-", fresh.url)
        await fresh.reload()
        await expect(fresh.locator("#run-title")).to_have_text("Three gulls")
        await screenshot(fresh, "page-history.png")

        # A refused request reads as sentences, not [object Object].
        await fresh.click("#new-video")
        await fresh.click("#options summary")
        await fresh.fill("#music", "../bed.mp3")
        await fresh.fill("#transition-seconds", "9")
        await fresh.click("#submit")
        error = fresh.locator("#form-error")
        await expect(error).to_contain_text("Music: '../bed.mp3' is not a storage key")
        await expect(error).to_contain_text("Transition length: Input should be less than")
        text = await error.inner_text()
        assert "[object Object]" not in text and "Music: Music" not in text
        await screenshot(fresh, "page-422.png")


async def test_a_failed_clip_is_retried_with_a_new_prompt_from_the_page(
    live_api: LiveApi, flaky: FlakyProvider
) -> None:
    body = {
        "title": "Flaky harbour",
        "scenes": [{"description": f"Scene {n}", "duration": 2} for n in range(1, 4)],
        "platform": "youtube",
        "provider": "flaky",
    }
    gid = (await live_api.http.post("/v1/generations", json=body)).json()["id"]
    async with chromium() as browser:
        page = await run_page(browser, live_api, gid)
        failed = page.locator('.clip[data-id="2"]')
        await expect(failed).to_have_attribute("data-status", "failed", timeout=120_000)
        await expect(failed.locator(".error")).to_contain_text("upstream exploded")
        await expect(page.locator("#status")).to_have_attribute("data-status", "awaiting_retry")
        await expect(page.locator("#finish")).to_be_visible()
        await screenshot(page, "page-awaiting-retry.png")
        flaky.heal()
        await failed.locator("input.prompt").fill("a calmer harbour at dusk")
        await failed.locator("button.retry").click()
        await expect(failed).to_have_attribute("data-status", "complete", timeout=120_000)
        await expect(page.locator("#player")).to_be_visible(timeout=60_000)
        await screenshot(page, "page-retried.png")
    view = (await live_api.http.get(f"/v1/generations/{gid}")).json()
    assert view["status"] == "completed"
    assert view["clips"][1]["prompt"].endswith("a calmer harbour at dusk")
    assert view["skipped_clips"] == []


async def test_a_run_waiting_on_a_failed_clip_is_finished_from_the_page(
    live_api: LiveApi,
) -> None:
    body = {
        "title": "Harbour without its second scene",
        "scenes": [{"description": f"Scene {n}", "duration": 2} for n in range(1, 4)],
        "platform": "youtube",
        "provider": "flaky",
    }
    gid = (await live_api.http.post("/v1/generations", json=body)).json()["id"]
    async with chromium() as browser:
        page = await run_page(browser, live_api, gid)
        await reaches(page, "awaiting_retry")
        await page.click("#finish")
        await reaches(page, "completed")
        await expect(page.locator("#player")).to_be_visible(timeout=60_000)
        await expect(page.locator("#facts")).to_contain_text("without clip 2")
        await expect(page.locator("#finish")).to_have_count(0)
        left_out = page.locator('.clip[data-id="2"]')
        await expect(left_out.locator(".act")).to_have_text("left out")
        await expect(left_out.locator("button.retry")).to_have_count(0)
        await screenshot(page, "page-finished-without-failed.png")
    view = (await live_api.http.get(f"/v1/generations/{gid}")).json()
    assert view["skipped_clips"] == [2]


async def test_a_storyboard_is_reviewed_edited_and_approved_from_the_page(
    live_api: LiveApi,
) -> None:
    async with chromium() as browser:
        page = await browser.new_page()
        await page.goto(f"{live_api.url}/#key={live_api.key}")
        await expect(page.locator("#who")).to_have_text("alice")
        await page.fill("#title", "Reviewed harbour")
        await page.fill("#script", "A boat leaves at dawn. The gulls follow it. Night falls.")
        await page.select_option("#platform", "youtube")
        await page.click("#options summary")
        await page.select_option("#provider", "sleepy")
        await page.check("#review")
        await page.click("#submit")

        await reaches(page, "awaiting_approval", timeout=60_000)
        scenes = page.locator("#storyboard figure")
        await expect(scenes).to_have_count(3, timeout=30_000)
        await all_images_loaded(page, "#storyboard img")
        # What the clips will cost is shown before they are paid for.
        await expect(page.locator("#quote")).to_contain_text("Quote: about $", timeout=30_000)
        await expect(page.locator("#quote")).to_contain_text("of clips on sleepy/")
        # Nothing is paid for while the storyboard waits: no clip has started.
        assert await page.locator('.clip[data-status="complete"]').count() == 0
        await screenshot(page, "page-review.png")

        second = page.locator('#storyboard figure[data-scene="2"]')
        old_src = await second.locator("img").get_attribute("src")
        answers = iter(["A red kite over the dunes", "The kite"])
        page.on("dialog", lambda dialog: dialog.accept(next(answers)))
        await second.locator("button.edit-scene").click()
        await expect(second.locator(".scene-text")).to_have_text(
            "A red kite over the dunes", timeout=30_000
        )
        assert await second.locator("img").get_attribute("src") != old_src
        await all_images_loaded(page, "#storyboard img")
        await screenshot(page, "page-review-edited.png")

        await page.click("#approve")
        await reaches(page, "completed")
        await expect(page.locator("#player")).to_be_visible(timeout=60_000)
    gid = page.url.split("#run=")[1]
    view = (await live_api.http.get(f"/v1/generations/{gid}")).json()
    assert view["clips"][1]["prompt"].endswith("SCENE: A red kite over the dunes")
    assert view["scenes"][1]["caption"] == "The kite"


async def test_a_run_says_on_its_page_what_its_video_lacks(live_api: LiveApi) -> None:
    # The test worker's voice is silent (as a worker without espeak-ng): narration asked for
    # is missing from the video, and the page says so instead of playing it without a word.
    body = {
        "title": "A quiet harbour",
        "scenes": [{"description": "Boats at rest", "duration": 2}],
        "platform": "youtube",
        "narration": True,
    }
    gid = (await live_api.http.post("/v1/generations", json=body)).json()["id"]
    async with chromium() as browser:
        page = await run_page(browser, live_api, gid)
        await reaches(page, "completed")
        warning = page.locator("#warnings")
        await expect(warning).to_be_visible()
        await expect(warning).to_contain_text("the video has no speech")
        await screenshot(page, "page-warning.png")
        # Another run of the same person without narration shows no warning.
        quiet = {**body, "title": "A harbour", "narration": False}
        other = (await live_api.http.post("/v1/generations", json=quiet)).json()["id"]
        await page.goto(f"{live_api.url}/#run={other}")
        await page.reload()
        await reaches(page, "completed")
        await expect(warning).to_be_hidden()


ARABIC_TITLE = "ميناء عند الفجر"
ARABIC_SCRIPT = "يغادر قارب الميناء عند الفجر. تتبعه طيور النورس. يحل الليل على البحر."


async def test_a_run_in_arabic_reads_right_to_left_on_the_page(live_api: LiveApi) -> None:
    async with chromium() as browser:
        page = await browser.new_page()
        await page.goto(f"{live_api.url}/#key={live_api.key}")
        await expect(page.locator("#who")).to_have_text("alice")
        await page.fill("#title", ARABIC_TITLE)
        await page.fill("#script", ARABIC_SCRIPT)
        assert await page.locator("#script").evaluate("(e) => getComputedStyle(e).direction") == (
            "rtl"
        )
        await page.select_option("#platform", "youtube")
        await page.click("#options summary")
        await page.select_option("#provider", "sleepy")
        await page.check("#review")
        await page.click("#submit")

        await reaches(page, "awaiting_approval", timeout=60_000)
        await expect(page.locator("#run-title")).to_have_text(ARABIC_TITLE)
        texts = page.locator("#storyboard .scene-text")
        await expect(texts).to_have_count(3, timeout=30_000)
        await all_images_loaded(page, "#storyboard img")
        for element in (
            page.locator("#run-title"),
            texts.first,
            page.locator("#history .title").first,
        ):
            direction = await element.evaluate("(e) => getComputedStyle(e).direction")
            assert direction == "rtl", await element.text_content()
        await screenshot(page, "page-arabic.png")
        await page.click("#approve")
        await reaches(page, "completed")
        await expect(page.locator("#player")).to_be_visible(timeout=60_000)


async def test_a_track_is_uploaded_from_the_page_and_becomes_the_music(
    live_api: LiveApi, tmp_path: Path
) -> None:
    from activities.media import ffmpeg

    track = tmp_path / "harbour bed.m4a"
    ffmpeg.run(["-f", "lavfi", "-i", "sine=f=330:d=4", "-c:a", "aac", str(track)])
    notes = tmp_path / "cover.png"
    notes.write_text("not a picture")
    async with chromium() as browser:
        page = await browser.new_page()
        await page.goto(f"{live_api.url}/#key={live_api.key}")
        await expect(page.locator("#who")).to_have_text("alice")
        await page.click("#options summary")
        await page.set_input_files("#asset-file", str(notes))
        await expect(page.locator("#upload-status")).to_contain_text(
            "not an image, video or audio file", timeout=30_000
        )
        await page.set_input_files("#asset-file", str(track))
        await expect(page.locator("#upload-status")).to_contain_text("audio", timeout=30_000)
        music = await page.locator("#music").input_value()
        assert music.startswith("ast-")
        await screenshot(page, "page-upload.png")
        await page.fill("#title", "With my own music")
        await page.fill("#script", "A quiet harbour at dawn.")
        await page.select_option("#platform", "youtube")
        await page.select_option("#provider", "sleepy")
        await page.click("#submit")
        await reaches(page, "completed")
    [asset] = (await live_api.http.get("/v1/assets")).json()
    assert asset["id"] == music and asset["kind"] == "audio"
    assert asset["name"] == "harbour bed.m4a"


async def test_a_draft_is_marked_and_made_final_from_the_page(live_api: LiveApi) -> None:
    async with chromium() as browser:
        page = await browser.new_page()
        await page.goto(f"{live_api.url}/#key={live_api.key}")
        await expect(page.locator("#who")).to_have_text("alice")
        await page.fill("#title", "Draft harbour")
        await page.fill("#script", "A boat leaves at dawn. The gulls follow it.")
        await page.select_option("#platform", "youtube")
        await page.click("#options summary")
        await page.select_option("#provider", "sleepy")
        await page.check("#draft")
        await page.click("#submit")
        await reaches(page, "completed")
        await expect(page.locator("#facts")).to_contain_text("DRAFT")
        await expect(page.locator("#quote")).to_contain_text("; the finals: about $")
        draft = page.url.split("#run=")[1]
        await screenshot(page, "page-draft.png")
        await page.click("#finalize")
        await expect(page.locator("#facts")).to_contain_text(f"final of {draft}", timeout=30_000)
        await reaches(page, "completed")
        assert page.url.endswith(f"#run={draft}-final")
        await expect(page.locator("#finalize")).to_have_count(0)
    final = (await live_api.http.get(f"/v1/generations/{draft}-final")).json()
    assert final["draft_of"] == draft and final["quality"] == "final"
