"""Uploads over the real API: kinds found from the content, limits, per-user isolation, and a
run whose scenes are the caller's own video and picture (nothing generated or paid for them,
their pixels in the finished video) with an uploaded music bed."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client
from typer.testing import CliRunner

from activities.media import ffmpeg
from activities.providers import ClipProvider
from storyreel import cli
from storyreel.contracts import PLATFORMS, Platform
from storyreel.settings import Settings, get_settings
from tests.activities.media.helpers import make_clip, samples, tone_level
from tests.api.conftest import LiveApi, live_stack
from tests.api.test_generations import poll_until
from tests.fakes import CallLog, SleepyProvider

SPEC = PLATFORMS[Platform.youtube]


def _make(path: Path, *args: str) -> Path:
    ffmpeg.run([*args, str(path)])
    return path


def picture(path: Path, colour: str = "blue") -> Path:
    return _make(path, "-f", "lavfi", "-i", f"color=c={colour}:s=640x360", "-frames:v", "1")


def sound(path: Path, seconds: float = 3.0) -> Path:
    return _make(path, "-f", "lavfi", "-i", f"sine=f=440:d={seconds}", "-c:a", "aac")


async def upload(http: httpx.AsyncClient, path: Path, name: str | None = None) -> httpx.Response:
    with path.open("rb") as handle:
        files = {"file": (name or path.name, handle, "application/octet-stream")}
        return await http.post("/v1/assets", files=files)


@pytest.fixture
async def logged(
    client: Client, settings: Settings, prepared_clip: Path
) -> AsyncIterator[tuple[LiveApi, CallLog]]:
    log = CallLog()
    providers: dict[str, ClipProvider] = {"sleepy": SleepyProvider(prepared_clip, 0.5, log)}
    async with live_stack(client, settings, providers, "alice") as api:
        yield api, log


async def test_images_videos_and_sound_are_told_apart_by_their_content(
    live_api: LiveApi, tmp_path: Path
) -> None:
    # Names that lie: the content decides.
    image = await upload(live_api.http, picture(tmp_path / "a.png"), "holiday.mp4")
    video = await upload(live_api.http, make_clip(tmp_path / "v.mp4", SPEC, 2.0, "red"), "clip.png")
    audio = await upload(live_api.http, sound(tmp_path / "s.m4a"), "song.jpg")
    for answer in (image, video, audio):
        assert answer.status_code == 201, answer.text
    assert image.json()["kind"] == "image" and image.json()["width"] == 640
    assert video.json()["kind"] == "video" and video.json()["duration"] == pytest.approx(
        2.0, abs=0.1
    )
    assert audio.json()["kind"] == "audio" and audio.json()["duration"] == pytest.approx(
        3.0, abs=0.1
    )
    assert image.json()["name"] == "holiday.mp4"
    listed = (await live_api.http.get("/v1/assets")).json()
    assert {item["id"] for item in listed} == {a.json()["id"] for a in (image, video, audio)}
    one = await live_api.http.get(f"/v1/assets/{video.json()['id']}")
    assert one.status_code == 200 and one.json()["kind"] == "video"


async def test_unusable_uploads_are_422_saying_why(live_api: LiveApi, tmp_path: Path) -> None:
    text = tmp_path / "notes.png"
    text.write_text("these are not pixels\n" * 50)
    answer = await upload(live_api.http, text)
    assert answer.status_code == 422
    assert "not an image, video or audio file" in answer.json()["detail"]

    clip = make_clip(tmp_path / "whole.mp4", SPEC, 2.0)
    broken = tmp_path / "broken.mp4"
    data = clip.read_bytes()
    broken.write_bytes(data[: len(data) // 3])  # moov at the end: nothing to play
    answer = await upload(live_api.http, broken)
    assert answer.status_code == 422, answer.text

    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    answer = await upload(live_api.http, empty)
    assert answer.status_code == 422 and "empty" in answer.json()["detail"]

    answer = await live_api.http.post(
        "/v1/assets", content=b"raw", headers={"content-type": "text/plain"}
    )
    assert answer.status_code == 422 and "multipart" in answer.json()["detail"]
    answer = await live_api.http.post("/v1/assets", files={"other": ("x.png", b"123")})
    assert answer.status_code == 422 and "'file'" in answer.json()["detail"]


async def test_an_upload_over_the_size_limit_is_refused(
    client: Client, settings: Settings, clip_providers: dict[str, ClipProvider], tmp_path: Path
) -> None:
    small = settings.model_copy(update={"max_asset_bytes": 10_000})
    async with live_stack(client, small, clip_providers, "bob") as api:
        big = make_clip(tmp_path / "big.mp4", SPEC, 3.0)
        assert big.stat().st_size > 10_000
        answer = await upload(api.http, big)
        assert answer.status_code == 422
        assert "larger than 10000 bytes" in answer.json()["detail"]
        assert (await api.http.get("/v1/assets")).json() == []
        # Nothing of the refused upload is left behind.
        assert not any((small.data_dir / "uploads").iterdir())


async def test_another_users_asset_does_not_exist(live_api: LiveApi, tmp_path: Path) -> None:
    mine = (await upload(live_api.http, picture(tmp_path / "p.png"))).json()["id"]
    async with live_api.new_user("mallory") as other:
        assert (await other.get(f"/v1/assets/{mine}")).status_code == 404
        assert (await other.delete(f"/v1/assets/{mine}")).status_code == 404
        assert (await other.get("/v1/assets")).json() == []
        body = {
            "title": "Borrowed",
            "scenes": [{"description": "a", "duration": 2, "asset": mine}],
        }
        answer = await other.post("/v1/generations", json=body)
        assert answer.status_code == 422 and "no asset" in answer.json()["detail"]
        # A storage key is never accepted in place of an id (it could be anyone's).
        body["scenes"][0]["asset"] = f"assets/1/{mine}"  # type: ignore[index]
        answer = await other.post("/v1/generations", json=body)
        assert answer.status_code == 422
        answer = await other.post("/v1/generations", json={**body, "music": f"assets/1/{mine}"})
        assert answer.status_code == 422
    assert (await live_api.http.get(f"/v1/assets/{mine}")).status_code == 200
    assert (await live_api.http.delete(f"/v1/assets/{mine}")).status_code == 204
    assert (await live_api.http.get(f"/v1/assets/{mine}")).status_code == 404


def _mean_rgb(video: Path, at: float) -> tuple[float, float, float]:
    """The average colour of the frame's top half at ``at`` seconds (above the captions)."""
    raw = subprocess.run(
        [ffmpeg.ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-ss", f"{at:.3f}",
         "-i", str(video), "-frames:v", "1", "-vf", "crop=iw:ih/2:0:0,scale=64:18",
         "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    pixels = len(raw) // 3
    return tuple(sum(raw[c::3]) / pixels for c in range(3))  # type: ignore[return-value]


async def test_a_run_with_own_scenes_and_music_pays_only_for_the_generated_one(
    logged: tuple[LiveApi, CallLog], tmp_path: Path
) -> None:
    api, log = logged
    video = (await upload(api.http, make_clip(tmp_path / "red.mp4", SPEC, 5.0, "red"))).json()
    image = (await upload(api.http, picture(tmp_path / "blue.png", "blue"))).json()
    music = (await upload(api.http, sound(tmp_path / "bed.m4a", 12.0))).json()
    body = {
        "title": "Own material",
        "platform": "youtube",
        "provider": "sleepy",
        "transition": "none",
        "captions": False,
        "music": music["id"],
        "scenes": [
            {"description": "A generated harbour", "duration": 2},
            {"description": "My own footage", "duration": 3, "asset": video["id"]},
            {"description": "My own picture", "duration": 2.5, "asset": image["id"]},
        ],
    }
    answer = await api.http.post("/v1/generations", json=body)
    assert answer.status_code == 202, answer.text
    gid = answer.json()["id"]
    view = await poll_until(api, gid, {"completed", "failed"}, [])
    assert view["status"] == "completed", view
    # Only scene 1 went to the provider; scenes 2 and 3 are the uploads, at no cost.
    assert sorted({clip for clip, _ in log.submits}) == [1]
    clips = {clip["clip_id"]: clip for clip in view["clips"]}
    assert clips[2]["provider"] == clips[3]["provider"] == "asset"
    assert clips[2]["cost"] == clips[3]["cost"] == 0.0
    quoted = {scene["index"]: scene for scene in view["quote"]["scenes"]}
    assert quoted[2]["own"] and quoted[3]["own"] and quoted[2]["billed_seconds"] == 0
    assert view["duration"] == pytest.approx(7.5, abs=0.1)

    finished = tmp_path / "finished.mp4"
    got = await api.http.get(f"/v1/generations/{gid}/video", follow_redirects=True)
    assert got.status_code == 200
    finished.write_bytes(got.content)
    info = ffmpeg.probe(finished)
    assert info.duration == pytest.approx(7.5, abs=0.1) and info.audio_codec == "aac"
    red, green, blue = _mean_rgb(finished, 3.5)  # mid scene 2: the uploaded red clip
    assert red > 150 and green < 60 and blue < 60, (red, green, blue)
    red, green, blue = _mean_rgb(finished, 6.2)  # mid scene 3: the uploaded blue picture
    assert blue > 150 and red < 60 and green < 60, (red, green, blue)


async def test_the_cli_uploads_and_lists(
    live_api: LiveApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clip = make_clip(tmp_path / "own footage.mp4", SPEC, 2.0, "green")
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    monkeypatch.setenv("STORYREEL_API_URL", live_api.url)
    monkeypatch.setenv("STORYREEL_API_KEY", live_api.key)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        made = await asyncio.to_thread(
            runner.invoke, cli.app, ["upload", str(clip)], env={"COLUMNS": "200"}
        )
        listed = await asyncio.to_thread(runner.invoke, cli.app, ["assets"], env={"COLUMNS": "200"})
        refused = await asyncio.to_thread(
            runner.invoke, cli.app, ["upload", str(text)], env={"COLUMNS": "200"}
        )
    finally:
        get_settings.cache_clear()
    assert made.exit_code == 0, made.output
    [asset] = (await live_api.http.get("/v1/assets")).json()
    assert made.output.startswith(asset["id"]) and "video" in made.output
    assert "own footage.mp4" in made.output
    assert listed.exit_code == 0 and asset["id"] in listed.output
    assert refused.exit_code == 1 and "422" in refused.output
    assert "not an image, video or audio" in refused.output


async def test_a_characters_reference_must_be_an_image_of_yours(
    live_api: LiveApi, tmp_path: Path
) -> None:
    image = (await upload(live_api.http, picture(tmp_path / "mara.png", "magenta"))).json()
    track = (await upload(live_api.http, sound(tmp_path / "bed.m4a"))).json()

    def body(asset: str) -> dict[str, object]:
        return {
            "title": "Mara",
            "scenes": [{"description": "Mara on the pier", "duration": 2}],
            "captions": False,
            "characters": [{"name": "Mara", "description": "a magenta scarf", "assets": [asset]}],
        }

    answer = await live_api.http.post("/v1/generations", json=body(track["id"]))
    assert answer.status_code == 422 and "is audio, not image" in answer.json()["detail"]
    answer = await live_api.http.post("/v1/generations", json=body(image["id"]))
    assert answer.status_code == 202, answer.text
    view = await poll_until(live_api, answer.json()["id"], {"completed", "failed"}, [])
    assert view["status"] == "completed", view
    assert view["scenes"][0]["characters"] == ["Mara"]
    assert view["scenes"][0]["references"] == [image["id"]]
    async with live_api.new_user("mallory") as other:
        answer = await other.post("/v1/generations", json=body(image["id"]))
        assert answer.status_code == 422 and "no asset" in answer.json()["detail"]


async def _finished(api: LiveApi, body: dict[str, object], path: Path) -> Path:
    answer = await api.http.post("/v1/generations", json=body)
    assert answer.status_code == 202, answer.text
    gid = answer.json()["id"]
    view = await poll_until(api, gid, {"completed", "failed"}, [])
    assert view["status"] == "completed", view
    got = await api.http.get(f"/v1/generations/{gid}/video", follow_redirects=True)
    path.write_bytes(got.content)
    return path


async def test_own_narration_for_a_scene_and_for_the_whole_video(
    live_api: LiveApi, tmp_path: Path
) -> None:
    scene_voice = (
        await upload(live_api.http, _make(tmp_path / "a.m4a", "-f", "lavfi", "-i",
                                          "sine=f=440:d=2", "-c:a", "aac"))
    ).json()  # fmt: skip
    run_voice = (
        await upload(live_api.http, _make(tmp_path / "b.m4a", "-f", "lavfi", "-i",
                                          "sine=f=660:d=9", "-c:a", "aac"))
    ).json()  # fmt: skip
    scenes = [{"description": f"Scene {n}", "duration": 2} for n in (1, 2, 3)]
    base = {"title": "Voices", "platform": "youtube", "provider": "local",
            "transition": "none", "clip_audio": "drop", "captions": False}  # fmt: skip
    # Scene 2 says its own recording; no TTS anywhere (narration is off).
    scenes[1]["voice_asset"] = scene_voice["id"]
    one = await _finished(live_api, {**base, "scenes": scenes}, tmp_path / "one.mp4")
    signal = samples(one)
    assert tone_level(signal, 2.2, 3.8, 440) > 10 * tone_level(signal, 0.2, 1.8, 440)
    assert tone_level(signal, 2.2, 3.8, 440) > 10 * tone_level(signal, 4.2, 5.8, 440)
    # One recording over the whole video, from its start, cut at its end.
    del scenes[1]["voice_asset"]
    whole = {**base, "scenes": scenes, "voice_asset": run_voice["id"], "narration": True}
    two = await _finished(live_api, whole, tmp_path / "two.mp4")
    signal = samples(two)
    quiet = tone_level(samples(one), 0.2, 1.8, 660)
    for start in (0.2, 2.2, 4.2):
        assert tone_level(signal, start, start + 1.6, 660) > 10 * max(quiet, 1.0)
    assert ffmpeg.probe(two).duration == pytest.approx(6.0, abs=0.1)
    # A picture is no narration.
    image = (await upload(live_api.http, picture(tmp_path / "p.png"))).json()
    answer = await live_api.http.post(
        "/v1/generations", json={**base, "scenes": scenes, "voice_asset": image["id"]}
    )
    assert answer.status_code == 422 and "is image, not audio" in answer.json()["detail"]
