"""Where a caption may break into lines, in any script, and lines filled by measured width.

Scripts that put spaces between words (Latin, Arabic, Hebrew, Devanagari, Korean, ...) break
at the spaces. Chinese and Japanese have none: a line may break between any two characters,
except before closing punctuation and small kana, or after opening brackets (the Japanese
*kinsoku* rule). A unit wider than the whole line breaks between characters, never before a
combining mark (a vowel sign or virama stays with its consonant). Lines keep the text's logical
order; FFmpeg's drawtext lays each line out right to left when it reads so.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

# No line starts with these (closing punctuation, iteration marks, small kana, prolonged sound).
NO_START = frozenset(
    "、。，．・：；？！ー）」』】〕〉》〙〗｝］ゝゞヽヾぁぃぅぇぉっゃゅょゎゕゖァィゥェォッャュョヮヵヶ"
    "…‥,.!?:;)]}%"
)
NO_END = frozenset("（「『【〔〈《〘〖｛［([{")
_CLOSE_SCRIPTS = ("CJK", "HIRAGANA", "KATAKANA", "IDEOGRAPHIC", "FULLWIDTH", "HALFWIDTH")

Measure = Callable[[str], float]


def breaks_anywhere(char: str) -> bool:
    """Chinese and Japanese characters: a line may break before and after each."""
    return unicodedata.name(char, "").startswith(_CLOSE_SCRIPTS)


def units(text: str) -> list[str]:
    """``text`` cut where lines may break; joined back they are the text, spaces collapsed.
    A unit keeps the space that follows it."""
    out: list[str] = []
    glue = False  # the next character sticks to the unit before it
    for char in " ".join(text.split()):
        if char == " ":
            if out:
                out[-1] += " "
            glue = False
            continue
        starts = not out or out[-1].endswith(" ") or breaks_anywhere(char)
        starts = starts or (bool(out) and breaks_anywhere(out[-1][-1]))
        if char in NO_START or unicodedata.category(char).startswith("M"):
            starts = not out or out[-1].endswith(" ")
        if glue and not out[-1].endswith(" "):
            starts = False
        if starts:
            out.append(char)
        else:
            out[-1] += char
        glue = char in NO_END
    return out


def _split_wide(unit: str, usable: float, measure: Measure) -> list[str]:
    """A unit too wide for a line, cut between characters (never before a combining mark)."""
    pieces = [""]
    for char in unit:
        mark = unicodedata.category(char).startswith("M") or char == " "
        if pieces[-1] and not mark and measure(pieces[-1] + char) > usable:
            pieces.append("")
        pieces[-1] += char
    return pieces


def fill(text: str, usable: float, measure: Measure) -> list[str]:
    """Lines of ``text`` no wider than ``usable`` (by ``measure``), greedily, at its breaks."""
    lines: list[str] = []
    line = ""
    for unit in units(text):
        for piece in (
            _split_wide(unit, usable, measure) if measure(unit.rstrip()) > usable else [unit]
        ):
            if line and measure((line + piece).rstrip()) > usable:
                lines.append(line.rstrip())
                line = ""
            line += piece
    if line.strip():
        lines.append(line.rstrip())
    return lines
