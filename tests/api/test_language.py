"""A request's narration language is checked against the installed espeak-ng voices, and its
captions' scripts against the installed fonts."""

from __future__ import annotations

import shutil

import pytest

from api.validation import check_captions, check_language
from storyreel.contracts import GenerationRequest
from storyreel.errors import BadInputError
from storyreel.settings import Settings
from storyreel.voices import installed_languages, parse_voices

LISTING = """Pty Language       Age/Gender VoiceName          File                 Other Languages
 5  de              --/M      German             gmw/de
 2  en-gb           --/M      English_(Great_Britain) gmw/en               (en 2)
 5  fr-be           --/M      French_(Belgium)   roa/fr-BE            (fr 8)
"""


def test_the_listing_gives_languages_files_and_other_languages() -> None:
    assert parse_voices(LISTING) == {"de", "en-gb", "en", "fr-be", "fr"}


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_installed_voices_pass_and_unknown_ones_are_refused_with_the_list() -> None:
    installed = installed_languages()
    assert installed is not None and {"en", "de", "fr"} <= installed
    for language in ("en", "de", "fr"):
        check_language(GenerationRequest(title="t", script="Hi.", language=language))
    with pytest.raises(
        BadInputError, match=r"'xx' is not an installed espeak-ng voice; installed: .*de, "
    ):
        check_language(GenerationRequest(title="t", script="Hi.", language="xx"))


def test_a_language_must_look_like_a_voice_name() -> None:
    with pytest.raises(ValueError, match="language"):
        GenerationRequest(title="t", script="Hi.", language="-v evil")


MIXED = "A harbour at dawn. مرحبا بالعالم. こんにちは、世界。 नमस्ते दुनिया."


def test_captions_in_any_installed_script_pass_sentence_by_sentence() -> None:
    # Each sentence finds its own font; no one font has all four scripts.
    check_captions(GenerationRequest(title="t", script=MIXED), Settings())
    scenes = [{"description": "ميناء", "duration": 3}, {"description": "港", "duration": 3}]
    check_captions(GenerationRequest.model_validate({"title": "t", "scenes": scenes}), Settings())


def test_a_script_without_a_font_is_refused_unless_captions_are_off() -> None:
    odd = "Hello \U0010fffd."
    with pytest.raises(BadInputError, match="captions: no font here draws UNKNOWN: install"):
        check_captions(GenerationRequest(title="t", script=odd), Settings())
    check_captions(GenerationRequest(title="t", script=odd, captions=False), Settings())
