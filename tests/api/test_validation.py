"""Request options and the checks the API makes before it starts a workflow (no server)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from api.validation import check_billing, check_music
from storyreel.contracts import GenerationRequest, Platform
from storyreel.errors import BadInputError
from storyreel.settings import Settings
from storyreel.storage import LocalStorage


def scenes(count: int, seconds: float) -> list[dict[str, object]]:
    return [{"description": f"scene {n}", "duration": seconds} for n in range(count)]


def request(**fields: object) -> GenerationRequest:
    return GenerationRequest.model_validate({"title": "t", "scenes": scenes(2, 2.0), **fields})


def test_options_have_friendly_defaults() -> None:
    made = request()
    assert (made.captions, made.narration, made.voice, made.music) == (True, False, None, None)
    assert (made.transition, made.transition_seconds) == ("fade", 0.5)
    assert request(transition=None).transition is None
    assert request(transition="none").transition == "none"
    assert request(transition="wipeleft", transition_seconds=2).transition == "wipeleft"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"transition": "spin"}, "unknown transition 'spin'; use one of circleclose, circleopen"),
        ({"transition_seconds": 3}, "less than or equal to 2"),
        ({"transition_seconds": -1}, "greater than or equal to 0"),
        ({"music": "../secrets.mp3"}, "no '..', no leading '/'"),
        ({"music": "/etc/passwd"}, "is not a storage key"),
        ({"music": "music//bed.mp3"}, "is not a storage key"),
        ({"music": "music\\bed.mp3"}, "is not a storage key"),
        ({"music": "generations/gen-1/video.mp4"}, "is not a music track"),
        ({"voice": "--help"}, "String should match pattern"),
        ({"voice": "x" * 65}, "at most 64 characters"),
    ],
)
def test_bad_options_say_what_to_fix(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError) as error:
        request(**fields)
    assert message in str(error.value)


def test_good_voices_and_music_keys() -> None:
    for voice in ("alloy", "en-us+f3", "af_bella", "en-gb"):
        assert request(voice=voice).voice == voice
    assert request(music="music/harbour bed.mp3").music == "music/harbour bed.mp3"


def billed(made: GenerationRequest) -> float:
    return check_billing(made, Settings()).billed_seconds


def test_too_long_for_the_platform_is_refused_up_front() -> None:
    # Explicit scenes: the sum of their durations.
    assert billed(request(scenes=scenes(6, 10.0), platform="youtube_shorts")) == 60
    with pytest.raises(BadInputError, match="youtube_shorts allows at most 60 s"):
        billed(request(scenes=scenes(7, 10.0), platform="youtube_shorts"))
    with pytest.raises(BadInputError, match="instagram_reels allows at most 90 s"):
        billed(request(scenes=scenes(10, 10.0), platform="instagram_reels"))
    assert billed(request(scenes=scenes(30, 10.0), platform="youtube")) == 300
    # A script: the planner's estimate (10 words = 4 s a sentence, 30 sentences = 120 s).
    script = " ".join(f"Sentence {n} tells how the keeper climbs at dawn again." for n in range(30))
    long = GenerationRequest(title="t", script=script, platform=Platform.youtube_shorts)
    with pytest.raises(BadInputError, match="lasts 120 s|last 120 s"):
        billed(long)
    # A target duration caps the beats first, as the plan activity does: 12 beats of 4 s.
    capped = GenerationRequest(title="t", script=script, duration=60, platform="tiktok")
    assert billed(capped) == 48


KLING = {"provider": "replicate", "model": "kwaivgi/kling-v2.1"}


def test_the_platform_limit_counts_the_seconds_the_model_bills() -> None:
    """Kling makes 5 or 10 s clips: twelve 4 s scenes (48 s planned, inside Shorts' 60 s) are
    billed as 60 s, fourteen as 70 s: refused before anything is paid for, naming why."""
    fits = request(scenes=scenes(12, 4.0), platform="youtube_shorts", **KLING)
    assert billed(fits) == 60
    over = request(scenes=scenes(14, 4.0), platform="youtube_shorts", **KLING)
    with pytest.raises(BadInputError) as refused:
        billed(over)
    message = str(refused.value)
    assert "youtube_shorts: it allows 60 s" in message
    assert "replicate/kwaivgi/kling-v2.1 (it makes 5 or 10 s clips" in message
    assert "scene 1, 4 s, is billed as 5 s" in message and "come to 70 s" in message
    # The local provider makes any length: the same scenes bill what they last.
    assert billed(request(scenes=scenes(14, 4.0), platform="youtube")) == 56


def test_a_budget_is_checked_against_the_billed_price_up_front() -> None:
    """Three 6 s scenes on Kling bill 10 s each: the quote is the catalogue's price of 30 s."""
    settings = Settings()
    made = request(scenes=scenes(3, 6.0), platform="youtube", **KLING)
    price = settings.price("replicate", "kwaivgi/kling-v2.1").cost(10.0)
    quoted = check_billing(made, settings)
    assert [scene.billed_seconds for scene in quoted.scenes] == [10.0] * 3
    assert quoted.cost == pytest.approx(3 * price)
    check_billing(made.model_copy(update={"budget": 3 * price}), settings)
    with pytest.raises(BadInputError, match=r"budget: the clips would cost about .* over"):
        check_billing(made.model_copy(update={"budget": 3 * price - 0.01}), settings)
    # STORYREEL_PRICES wins over the catalogue.
    cheap = Settings(prices={"replicate/kwaivgi/kling-v2.1": {"per_second": 0.0}})
    assert check_billing(made.model_copy(update={"budget": 0.0}), cheap).cost == 0


def test_music_must_exist_in_storage(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    source = tmp_path / "bed.mp3"
    source.write_bytes(b"not really mp3")
    storage.put_file("music/bed.mp3", source)
    check_music(request(music="music/bed.mp3"), storage)
    check_music(request(), storage)
    with pytest.raises(BadInputError, match="music: no track at 'music/other.mp3'"):
        check_music(request(music="music/other.mp3"), storage)
