"""A request's narration language is checked against the installed espeak-ng voices."""

from __future__ import annotations

import shutil

import pytest

from api.validation import check_language
from storyreel.contracts import GenerationRequest
from storyreel.errors import BadInputError
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
