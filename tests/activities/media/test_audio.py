"""Narration placed on the scene timeline, TTS adapters, and the stitch's sound mix (speech,
the clips' own sound, a music bed ducked under the voice)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from temporalio.testing import ActivityEnvironment

from activities.assembly import AssemblyActivities
from activities.media import ffmpeg
from activities.media.audio import (
    TTS,
    EspeakTTS,
    OpenAITTS,
    SilentTTS,
    Soundtrack,
    close_tts,
    make_tts,
    narration_track,
    speech_seconds,
)
from activities.media.stitch import stitch
from storyreel.contracts import PLATFORMS, AssemblyClip, Platform, StitchInput
from storyreel.errors import MediaError, ProviderError, ProviderRefusedError
from storyreel.storage import LocalStorage

from .helpers import SMALL, make_clip, samples, tone_level


def tone(path: Path, hertz: int, seconds: float, volume: float = 0.5) -> Path:
    ffmpeg.run(["-f", "lavfi", "-i", f"sine=f={hertz}:d={seconds},volume={volume}", str(path)])
    return path


class ToneTTS:
    """Speaks every text as a 3 s 300 Hz tone at about -15 dBFS RMS, like loud TTS output."""

    def synthesize(self, text: str, dst: Path, voice: str | None = None) -> Path:
        return tone(dst, 300, 3.0, volume=2.0)


def test_silent_tts_lasts_as_long_as_the_words(tmp_path: Path) -> None:
    text = "one two three four five"
    out = SilentTTS().synthesize(text, tmp_path / "s.wav")
    assert isinstance(SilentTTS(), TTS)
    assert ffmpeg.probe(out).duration == pytest.approx(speech_seconds(text), abs=0.05) == 2.0


def test_speech_starts_with_its_scene_and_stops_at_its_end(tmp_path: Path) -> None:
    scenes = [(0.0, 1.0, "first"), (1.0, 1.0, " "), (2.0, 1.5, "third")]
    spoken: list[float] = []
    track = narration_track(scenes, tmp_path / "n.wav", ToneTTS(), on_progress=spoken.append)
    assert spoken == [pytest.approx(1 / 3), 1.0]
    assert ffmpeg.probe(track).duration == pytest.approx(3.5, abs=0.05)
    signal = samples(track)
    speaking = tone_level(signal, 0.2, 0.8, 300)
    assert speaking > 300
    assert tone_level(signal, 1.2, 1.8, 300) < speaking / 50  # cut at the end of scene 1
    assert tone_level(signal, 2.2, 3.2, 300) > speaking / 2  # scene 3 speaks at 2.0 s
    silent = narration_track([(0.0, 2.0, "")], tmp_path / "quiet.wav", ToneTTS(), total=4.0)
    assert ffmpeg.probe(silent).duration == pytest.approx(4.0, abs=0.05)


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return tone(tmp_path_factory.mktemp("speech") / "speech.wav", 440, 0.4).read_bytes()


def test_openai_tts_request_and_narration(tmp_path: Path, speech_wav: bytes) -> None:
    requests: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200, content=speech_wav, headers={"content-type": "audio/wav"})

    with OpenAITTS(
        "https://tts.example/v1/", "sk-test", "tts-1-hd", "nova",
        transport=httpx.MockTransport(answer),
    ) as tts:  # fmt: skip
        out = tts.synthesize("Hello harbour", tmp_path / "one.wav", voice="onyx")
        track = narration_track([(0.0, 1.0, "Hello"), (1.0, 1.0, "again")], tmp_path / "n.wav", tts)
    assert out.read_bytes() == speech_wav
    first = requests[0]
    assert (first.method, first.url.path) == ("POST", "/v1/audio/speech")
    assert first.url.host == "tts.example"
    assert first.headers["authorization"] == "Bearer sk-test"
    assert json.loads(first.content) == {
        "model": "tts-1-hd", "voice": "onyx", "input": "Hello harbour", "response_format": "wav",
    }  # fmt: skip
    assert [json.loads(r.content)["voice"] for r in requests[1:]] == ["nova", "nova"]
    assert ffmpeg.probe(track).duration == pytest.approx(2.0, abs=0.05)


@pytest.mark.parametrize(
    ("status", "error"), [(401, ProviderRefusedError), (429, ProviderError), (503, ProviderError)]
)
def test_openai_tts_errors(tmp_path: Path, status: int, error: type[Exception]) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(status, text="nope"))
    tts = OpenAITTS("http://local:8880", "sk-secret", transport=transport)
    with pytest.raises(error, match=f"answered {status}") as caught:
        tts.synthesize("hi", tmp_path / "x.wav")
    assert type(caught.value) is error
    assert "sk-secret" not in str(caught.value)
    tts.close()


def test_espeak_command_line_and_absence(tmp_path: Path) -> None:
    # The adapter's contract with the binary (text on stdin, -v voice, -w wav), checked
    # against a stand-in script: the real espeak-ng is a system package, absent here.
    fake = tmp_path / "espeak-ng"
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$@" > "{tmp_path}/args"; cat > "{tmp_path}/text"\n'
        'while [ "$1" != "-w" ]; do shift; done\n'
        f'exec "{ffmpeg.ffmpeg_exe()}" -loglevel error -y -f lavfi -i sine=d=0.7 "$2"\n'
    )
    fake.chmod(0o755)
    tts = EspeakTTS(str(fake))
    assert tts.available()
    out = tts.synthesize("-v is not an option here", tmp_path / "e.wav", voice="en-gb")
    assert ffmpeg.probe(out).duration == pytest.approx(0.7, abs=0.05)
    assert (tmp_path / "text").read_text() == "-v is not an option here"
    assert (tmp_path / "args").read_text().split()[:2] == ["-v", "en-gb"]
    missing = EspeakTTS()
    missing.binary = None
    assert not missing.available()
    with pytest.raises(MediaError, match="espeak-ng is not installed"):
        missing.synthesize("hi", tmp_path / "x.wav")


def test_real_espeak(tmp_path: Path) -> None:
    tts = EspeakTTS()
    if not tts.available():
        if os.environ.get("CI"):
            pytest.fail("espeak-ng is required in CI (.ci/run installs it)")
        pytest.skip("espeak-ng/espeak is not on PATH (a Debian package, not installed here)")
    out = tts.synthesize("The lighthouse keeper", tmp_path / "e.wav")
    assert ffmpeg.probe(out).duration > 0.5
    track = narration_track([(0.5, 2.0, "Hello there")], tmp_path / "n.wav", tts)
    assert ffmpeg.probe(track).duration == pytest.approx(2.5, abs=0.05)


@pytest.mark.parametrize("transition", [None, "fade"])
def test_every_stitch_with_a_soundtrack_has_aac_sound_as_long_as_the_picture(
    tmp_path: Path, transition: str | None
) -> None:
    silent = make_clip(tmp_path / "silent.mp4", SMALL, 1.5, "red")
    sounding = make_clip(tmp_path / "sounding.mp4", SMALL, 1.5, "red", audio=True)
    music = tone(tmp_path / "music.wav", 1000, 0.5)  # shorter than the video: loops
    voice = tone(tmp_path / "voice.wav", 300, 3.0)  # longer than its scene: cut
    for clip, speech, bed in [
        (silent, None, None), (sounding, None, None), (silent, None, music),
        (silent, voice, None), (sounding, voice, music),
    ]:  # fmt: skip
        track = Soundtrack([speech, None], bed)
        joined = stitch([clip, clip], tmp_path / "out.mp4", SMALL, transition=transition,
                        soundtrack=track)  # fmt: skip
        assert joined.mode == ("copy" if transition is None else "xfade")
        info = ffmpeg.probe(joined.path)
        assert (info.video_codec, info.audio_codec) == ("h264", "aac"), (clip, speech, bed)
        assert info.duration == pytest.approx(joined.expected_duration, abs=0.06)
        sound = samples(joined.path)
        end = joined.expected_duration
        level = tone_level(sound, end - 0.9, end - 0.2, 1000)
        assert (level > 50) == (bed is not None), (speech, bed, level)  # music loops to the end
        said = tone_level(sound, 0.2, 0.8, 300)
        assert (said > 50) == (speech is not None), (speech, bed, said)  # scene 1 speaks
        # Scene 2 says nothing: scene 1's speech stops where scene 2 starts.
        assert tone_level(sound, end - 0.9, end - 0.2, 300) < 50
        if clip is sounding and bed is None and speech is None:
            assert tone_level(sound, 0.2, 0.8, 330) > 50  # the clips' own sound stays


@pytest.mark.parametrize("duck", [True, False])
def test_music_ducks_under_the_voice(tmp_path: Path, duck: bool) -> None:
    clips = [
        make_clip(tmp_path / "one.mp4", SMALL, 1.0, "red"),
        make_clip(tmp_path / "two.mp4", SMALL, 2.0, "blue"),
    ]
    music = tone(tmp_path / "music.wav", 1000, 3.0, volume=0.8)
    speech = ToneTTS().synthesize("speak", tmp_path / "voice.wav")
    track = Soundtrack([speech, None], music, duck=duck, music_volume=0.35)
    joined = stitch(clips, tmp_path / "out.mp4", SMALL, transition=None, soundtrack=track)
    signal = samples(joined.path)
    under_voice = tone_level(signal, 0.3, 0.9, 1000)
    alone = tone_level(signal, 2.0, 2.8, 1000)
    assert tone_level(signal, 0.3, 0.9, 300) > 300  # the voice is there
    assert tone_level(signal, 1.2, 2.8, 300) < 50  # and cut where its scene ends
    if duck:
        assert under_voice < alone / 3
    else:
        assert under_voice == pytest.approx(alone, rel=0.2)


def clip_sound_mix(tmp_path: Path, mode: str, transition: str | None) -> list[int]:
    """Two clips with their own 330 Hz sound, scene 1 narrated (300 Hz), a 1000 Hz music bed
    ducked under the voice; the clips' sound treated as ``mode`` says."""
    clips = [
        make_clip(tmp_path / "one.mp4", SMALL, 1.5, "red", audio=True),
        make_clip(tmp_path / "two.mp4", SMALL, 2.5, "blue", audio=True),
    ]
    music = tone(tmp_path / "music.wav", 1000, 4.0, volume=0.8)
    speech = ToneTTS().synthesize("speak", tmp_path / "voice.wav")
    track = Soundtrack([speech, None], music, clip_audio=mode)  # type: ignore[arg-type]
    joined = stitch(clips, tmp_path / f"{mode}.mp4", SMALL, transition=transition,
                    transition_seconds=0.3, soundtrack=track)  # fmt: skip
    assert joined.mode == ("copy" if transition is None else "xfade")
    return samples(joined.path)


@pytest.mark.parametrize("transition", [None, "fade"])
def test_the_clips_own_sound_is_ducked_kept_or_dropped(
    tmp_path: Path, transition: str | None
) -> None:
    # Scene 1 (0-1.5 s) is narrated; the end of scene 2 is clear of the voice and its release.
    under, alone, music_under, music_alone = {}, {}, {}, {}
    for mode in ("duck", "keep", "drop"):
        signal = clip_sound_mix(tmp_path, mode, transition)
        assert tone_level(signal, 0.3, 1.1, 300) > 300, mode  # the voice is there
        under[mode] = tone_level(signal, 0.3, 1.1, 330)
        alone[mode] = tone_level(signal, 2.9, 3.6, 330)
        music_under[mode] = tone_level(signal, 0.3, 1.1, 1000)
        music_alone[mode] = tone_level(signal, 2.9, 3.6, 1000)
    # Away from the voice the clips sound the same ducked or kept, and not at all dropped.
    assert alone["duck"] == pytest.approx(alone["keep"], rel=0.2)
    assert alone["keep"] > 100 and alone["drop"] < alone["keep"] / 50
    # Under the voice: kept as it is, ducked well down, dropped.
    assert under["keep"] == pytest.approx(alone["keep"], rel=0.2)
    assert under["duck"] < under["keep"] / 3
    assert under["drop"] < under["keep"] / 50
    # The music bed ducks under the voice whatever becomes of the clips' sound.
    for mode in ("duck", "keep", "drop"):
        assert music_under[mode] < music_alone[mode] / 3, mode


def test_dropping_the_clips_sound_needs_no_other_soundtrack(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "one.mp4", SMALL, 1.0, "red", audio=True)
    for transition in (None, "fade"):
        joined = stitch([clip, clip], tmp_path / "out.mp4", SMALL, transition=transition,
                        soundtrack=Soundtrack(clip_audio="drop"))  # fmt: skip
        assert joined.has_audio and ffmpeg.probe(joined.path).audio_codec == "aac"
        signal = samples(joined.path)
        assert len(signal) > 8000 * 1.3 and max(abs(value) for value in signal) < 50


def test_assembly_passes_clip_audio_to_the_mix(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "media")
    clip = make_clip(tmp_path / "one.mp4", PLATFORMS[Platform.youtube], 1.0, "red", audio=True)
    storage.put_file("clips/1.mp4", clip)
    activities = AssemblyActivities(storage, tmp_path / "work")
    heard = {}
    for mode in ("keep", "drop"):
        request = StitchInput(
            generation_id=f"g-{mode}",
            platform=Platform.youtube,
            clips=[AssemblyClip(key="clips/1.mp4"), AssemblyClip(key="clips/1.mp4")],
            clip_audio=mode,
        )
        result = ActivityEnvironment().run(activities.stitch_video, request)
        assert result.mode == "copy" and result.audio_codec == "aac"
        heard[mode] = tone_level(samples(storage.path(result.key)), 0.2, 1.8, 330)
    assert heard["keep"] > 300 and heard["drop"] < 5


def test_a_soundtrack_needs_speech_for_every_scene(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "one.mp4", SMALL, 1.0, "red")
    voice = tone(tmp_path / "voice.wav", 300, 0.5)
    with pytest.raises(MediaError, match="speech for 1 scenes given for 2"):
        stitch([clip, clip], tmp_path / "out.mp4", SMALL, soundtrack=Soundtrack([voice]))


def test_make_tts_picks_the_configured_voice(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert isinstance(make_tts("silent"), SilentTTS)
    monkeypatch.setenv("PATH", str(tmp_path))  # no espeak anywhere
    with caplog.at_level("WARNING"):
        assert isinstance(make_tts("espeak"), SilentTTS)
    assert "espeak-ng is not installed" in caplog.text
    fake = tmp_path / "espeak-ng"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    espeak = make_tts("espeak", voice="en-gb", timeout=5)
    assert isinstance(espeak, EspeakTTS)
    assert (espeak.binary, espeak.voice, espeak.timeout) == (str(fake), "en-gb", 5)
    with pytest.raises(ValueError, match="needs tts_url"):
        make_tts("openai")
    with pytest.raises(ValueError, match="unknown tts_provider"):
        make_tts("festival")
    remote = make_tts("openai", url="http://tts.local/v1", api_key="sk-x", timeout=7)
    assert isinstance(remote, OpenAITTS)
    assert (remote.voice, remote.timeout) == ("alloy", 7)
    close_tts(remote)
    close_tts(espeak)


def test_openai_tts_whole_call_is_bounded(tmp_path: Path) -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        def chunks() -> Iterator[bytes]:
            for _ in range(50):
                time.sleep(0.02)
                yield b"RIFF...."

        return httpx.Response(200, content=chunks())

    transport = httpx.MockTransport(slow)
    with (
        OpenAITTS("http://tts.local", None, transport=transport, timeout=0.2) as tts,
        pytest.raises(ProviderError, match=r"took longer than 0\.2 s"),
    ):
        tts.synthesize("slow", tmp_path / "slow.wav")


def test_espeak_timeout_is_a_media_error(tmp_path: Path) -> None:
    fake = tmp_path / "espeak-ng"
    fake.write_text("#!/bin/sh\nsleep 5\n")
    fake.chmod(0o755)
    with pytest.raises(MediaError, match="longer than 0.3 s"):
        EspeakTTS(str(fake), timeout=0.3).synthesize("hi", tmp_path / "x.wav")
