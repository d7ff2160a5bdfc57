"""Which font draws a caption: the configured one when it has every glyph the text needs, else
the best installed font that has them all, found through fontconfig.

Roboto (the default, from the ``font-roboto`` package) draws Latin, Greek and Cyrillic. Other
scripts need fonts the machine has: the image (``deploy/Dockerfile``) and CI install Debian's
``fonts-noto-core`` (Arabic, Hebrew, Devanagari, Thai, ...) and ``fonts-noto-cjk`` (Chinese,
Japanese, Korean). Any other font fontconfig knows will do: ``fc-list :charset=...`` lists the
fonts holding the characters, and a Noto sans bold one is preferred. FFmpeg's drawtext shapes
the text with HarfBuzz and orders it with FriBidi, so a font that covers the text is all an
Arabic or Hindi caption needs to come out joined and in reading order.

The API asks :func:`missing_glyphs` before a run starts (a 422 naming the scripts and what to
install), so a run never fails at its last stage for want of a font.
"""

from __future__ import annotations

import shutil
import subprocess
import unicodedata
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

import uharfbuzz as hb

from storyreel.errors import BadInputError

INSTALL_HINT = (
    "install fonts that cover it (Debian: fonts-noto-core, and fonts-noto-cjk for Chinese, "
    "Japanese and Korean) or set STORYREEL_FONT_FILE to one"
)
_NO_GLYPH = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf"})  # spaces, controls, joiners: not drawn


def default_font() -> Path:
    """Roboto Bold, shipped with the ``font-roboto`` package."""
    import font_roboto

    return Path(font_roboto.__file__).parent / "files" / "Roboto-Bold.ttf"


def drawn(text: str) -> frozenset[str]:
    """The characters of ``text`` a font must have a glyph for."""
    return frozenset(char for char in text if unicodedata.category(char) not in _NO_GLYPH)


@lru_cache(maxsize=64)
def coverage(path: Path) -> frozenset[int]:
    """The code points the font's first face maps (a collection's first face: drawtext opens
    that one)."""
    face = hb.Face(hb.Blob.from_file_path(str(path)), 0)
    return frozenset(face.unicodes)


def covers(path: Path, text: str) -> bool:
    have = coverage(path)
    return all(ord(char) in have for char in drawn(text))


def scripts(chars: Iterable[str]) -> list[str]:
    """Readable names of the scripts of ``chars`` ("ARABIC", "CJK", "DEVANAGARI", ...)."""
    names = {unicodedata.name(char, "UNKNOWN").split()[0] for char in chars}
    return sorted(names)


def _score(family: str, style: str, weight: int) -> int:
    """How well a font suits captions: Noto, sans, bold, not mono or condensed."""
    text = f"{family} {style}".lower()
    score = 4 * ("noto" in text) + 2 * ("sans" in text) + 3 * (weight == 200)
    score -= 3 * any(word in text for word in ("mono", "condensed", "display", "ui "))
    return score - ("serif" in text) - ("naskh" in text)


@lru_cache(maxsize=256)
def _installed(chars: frozenset[str]) -> Path | None:
    binary = shutil.which("fc-list")
    if binary is None or not chars:
        return None
    charset = " ".join(f"{ord(char):x}" for char in sorted(chars))
    try:
        listing = subprocess.run(
            [binary, "--format", "%{file}\t%{index}\t%{family[0]}\t%{style[0]}\t%{weight}\n"]
            + [f":charset={charset}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    best: tuple[int, str] | None = None
    for line in listing.splitlines():
        fields = line.split("\t")
        if len(fields) != 5 or fields[1] != "0" or not fields[0].endswith((".ttf", ".otf", ".ttc")):
            continue
        weight = int(fields[4]) if fields[4].isdigit() else 0
        candidate = (_score(fields[2], fields[3], weight), fields[0])
        if best is None or candidate > best:
            best = candidate
    return Path(best[1]) if best else None


def missing_glyphs(text: str, preferred: Path | None = None) -> list[str]:
    """The scripts of ``text`` that neither the preferred font nor any installed one draws
    whole (empty when a font is found)."""
    return [] if _choose(text, preferred) else scripts(_uncovered(text, preferred))


def _uncovered(text: str, preferred: Path | None) -> set[str]:
    have = coverage(preferred or default_font())
    return {char for char in drawn(text) if ord(char) not in have}


def _choose(text: str, preferred: Path | None) -> Path | None:
    font = preferred or default_font()
    if covers(font, text):
        return font
    return _installed(drawn(text))


def font_for(text: str, preferred: Path | None = None) -> Path:
    """The font that draws ``text``: ``preferred`` (default Roboto) when it has every glyph,
    else the best installed font that has them all; ``BadInputError`` when none has."""
    font = _choose(text, preferred)
    if font is None:
        names = ", ".join(scripts(_uncovered(text, preferred)))
        raise BadInputError(f"no installed font draws the {names} in {text[:40]!r}: {INSTALL_HINT}")
    return font


def text_width(text: str, font: Path, size: float) -> float:
    """Pixels ``text`` advances at ``size`` pixels to the em, shaped as drawtext shapes it
    (HarfBuzz: ligatures, Arabic joining forms, Indic reordering, kerning)."""
    shaper = _shaper(font)
    buffer = hb.Buffer()
    buffer.add_str(text)
    buffer.guess_segment_properties()
    hb.shape(shaper, buffer, {})
    units: int = sum(position.x_advance for position in buffer.glyph_positions)
    upem: int = shaper.face.upem
    return units * size / upem


def font_height_em(font: Path) -> float:
    """The font's ascender plus descender, in ems: the height drawtext gives a line with
    ``y_align=font`` (Roboto 1.17, Noto Sans CJK 1.45)."""
    extents = _shaper(font).get_font_extents("ltr")
    height: int = extents.ascender - extents.descender
    upem: int = _shaper(font).face.upem
    return height / upem


@lru_cache(maxsize=16)
def _shaper(font: Path) -> hb.Font:
    return hb.Font(hb.Face(hb.Blob.from_file_path(str(font)), 0))


def right_to_left(text: str) -> bool:
    """Whether ``text`` reads right to left: its first strong character is (Unicode bidi)."""
    for char in text:
        kind = unicodedata.bidirectional(char)
        if kind in ("R", "AL"):
            return True
        if kind == "L":
            return False
    return False
