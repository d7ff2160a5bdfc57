"""Captions in every script: Arabic joined and right to left, Hindi with its conjuncts and vowel
signs in place, Japanese broken between characters by its rules, on both caption styles.

The frames FFmpeg draws are compared with a reference rendering of the same lines by another
shaping engine (Pillow's libraqm layout: HarfBuzz and FriBidi); the same lines laid out without
shaping (Pillow's basic layout: letters unjoined, left to right) or in a font without the
script (Roboto: empty boxes) must compare clearly worse, so the comparison can fail.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFont

from activities.media import ffmpeg
from activities.media.layout import LINE_HEIGHT_EM, caption_box, wrap_caption
from activities.media.lines import NO_START, fill, units
from activities.media.overlay import overlay_caption
from activities.media.words import place_words, spread_words
from storyreel.contracts import PlatformSpec
from storyreel.errors import BadInputError
from storyreel.fonts import default_font, font_for, missing_glyphs, right_to_left, text_width

from .helpers import make_clip

SPEC = PlatformSpec(width=720, height=1280, fps=30)
TEXTS = {
    "arabic": "مرحبا بالعالم، هذه قصة قصيرة عن مدينة جميلة على البحر",
    "hindi": "नमस्ते दुनिया, यह समुद्र के किनारे एक सुंदर शहर की कहानी है",
    "japanese": "こんにちは、世界。これは海辺の美しい町についての短い物語です。",
}
Mask = NDArray[np.bool_]


def _frame(video: Path, at: float, box: tuple[int, int, int, int]) -> NDArray[np.uint8]:
    x, y, w, h = box
    raw = subprocess.run(
        [ffmpeg.ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-ss", f"{at:.3f}",
         "-i", str(video), "-frames:v", "1", "-vf", f"crop={w}:{h}:{x}:{y}",
         "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    return np.frombuffer(raw, np.uint8).reshape(h, w, 3)


def _ink(picture: NDArray[np.uint8]) -> Mask:
    """The white letters (the band is dark, borders black, the highlight purple)."""
    return np.asarray(picture.min(axis=2) > 170)


def _reference(
    lines: list[str], font: Path, size: int, box: tuple[int, int, int, int], basic: bool = False
) -> Mask:
    """The lines centred on the frame, ``LINE_HEIGHT_EM`` apart, as Pillow draws them."""
    _, _, w, h = box
    layout = ImageFont.Layout.BASIC if basic else ImageFont.Layout.RAQM
    typeface = ImageFont.truetype(str(font), size, layout_engine=layout)
    picture = Image.new("RGB", (w, h), (40, 40, 40))
    draw = ImageDraw.Draw(picture)
    pitch = round(size * LINE_HEIGHT_EM)
    for number, line in enumerate(lines):
        at = (SPEC.width / 2 - box[0], size * 1.5 + number * pitch)
        draw.text(at, line, font=typeface, anchor="ms", fill="white", stroke_width=2,
                  stroke_fill="black")  # fmt: skip
    return _ink(np.asarray(picture))


def _grow(mask: Mask) -> Mask:
    """The mask and every pixel next to it."""
    padded = np.pad(mask, 1)
    out = np.zeros_like(mask)
    for dy in range(3):
        for dx in range(3):
            out |= padded[dy : dy + mask.shape[0], dx : dx + mask.shape[1]]
    return out


def _crop(mask: Mask) -> Mask:
    rows, cols = np.nonzero(mask)
    assert rows.size, "no letters drawn"
    return mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]


def likeness(drawn: Mask, reference: Mask) -> float:
    """F1 of the two drawings' letters, each pixel matched within one pixel, at the best
    small shift once their ink boxes are aligned."""
    ours, theirs = _crop(drawn), _crop(reference)
    height = max(ours.shape[0], theirs.shape[0]) + 8
    width = max(ours.shape[1], theirs.shape[1]) + 8
    canvas = np.zeros((height, width), bool)
    canvas[4 : 4 + ours.shape[0], 4 : 4 + ours.shape[1]] = ours
    best = 0.0
    for dy in range(-3, 4):
        for dx in range(-3, 4):
            other = np.zeros_like(canvas)
            top, left = 4 + dy, 4 + dx
            other[top : top + theirs.shape[0], left : left + theirs.shape[1]] = theirs
            precision = (canvas & _grow(other)).sum() / max(1, canvas.sum())
            recall = (other & _grow(canvas)).sum() / max(1, other.sum())
            if precision + recall:
                best = max(best, 2 * precision * recall / (precision + recall))
    return float(best)


def _controls(script: str, lines: list[str], size: int, box: tuple[int, int, int, int]) -> Mask:
    """What a caption without shaping looks like: unjoined letters in typing order (Arabic,
    Hindi); for Japanese, which shaping leaves alone, the default font's empty boxes."""
    if script == "japanese":
        return _reference(lines, default_font(), size, box)
    return _reference(lines, font_for(" ".join(lines)), size, box, basic=True)


@pytest.mark.parametrize("script", list(TEXTS))
def test_sentence_captions_are_shaped_like_a_shaping_engine_draws_them(
    tmp_path: Path, script: str
) -> None:
    text = TEXTS[script]
    source = make_clip(tmp_path / "in.mp4", SPEC, 1.0, "gray")
    out = tmp_path / "out.mp4"
    overlay_caption(source, out, text, SPEC)
    lines, size = wrap_caption(text, SPEC)
    assert len(lines) == 2, lines
    box = caption_box(SPEC, len(lines), size)
    drawn = _ink(_frame(out, 0.5, box))
    font = font_for(text)
    shaped = likeness(drawn, _reference(lines, font, size, box))
    unshaped = likeness(drawn, _controls(script, lines, size, box))
    assert shaped >= 0.85, (shaped, unshaped)
    assert unshaped <= shaped - 0.15, (shaped, unshaped)


@pytest.mark.parametrize("script", list(TEXTS))
def test_word_captions_are_shaped_and_laid_out_in_reading_order(
    tmp_path: Path, script: str
) -> None:
    text = TEXTS[script]
    source = make_clip(tmp_path / "in.mp4", SPEC, 2.0, "gray")
    out = tmp_path / "out.mp4"
    words = spread_words(text, 2.0)
    overlay_caption(source, out, text, SPEC, words=words)
    placed, lines, size = place_words(words, SPEC)
    page = [item for item in placed if item.page == 0]
    by_line: dict[int, list[str]] = {}
    for item in page:
        by_line.setdefault(item.line, []).append(item.word.text + " " * item.word.spaced)
    shown = ["".join(parts).strip() for _, parts in sorted(by_line.items())]
    box = caption_box(SPEC, lines, size)
    # Mid-page, every word of the page is drawn (one of them on its highlight).
    drawn = _ink(_frame(out, page[len(page) // 2].word.start + 0.01, box))
    shaped = likeness(drawn, _reference(shown, font_for(text), size, box))
    unshaped = likeness(drawn, _controls(script, shown, size, box))
    assert shaped >= 0.8, (shaped, unshaped)
    assert unshaped <= shaped - 0.15, (shaped, unshaped)
    if script == "arabic":  # the first word said is the rightmost of its line
        first = [item for item in page if item.line == 0]
        assert first[0].x == max(item.x for item in first)


@pytest.mark.fast
def test_japanese_breaks_between_characters_but_not_before_closing_marks() -> None:
    text = TEXTS["japanese"]
    pieces = units(text)
    assert "".join(pieces) == text
    assert not any(piece[0] in NO_START for piece in pieces)
    font = font_for(text)
    lines = fill(text * 3, 400, lambda line: text_width(line, font, 36))
    assert len(lines) > 3 and "".join(lines) == text * 3
    assert all(text_width(line, font, 36) <= 400 for line in lines)
    assert not any(line[0] in NO_START for line in lines)


@pytest.mark.fast
def test_vowel_signs_stay_with_their_consonant() -> None:
    word = "किनारे"  # क ि न ा र े: the vowel signs are combining marks
    font = font_for(word)
    lines = fill(word * 6, 120, lambda line: text_width(line, font, 40))
    assert len(lines) > 1
    assert all(not "\u093e\u093f\u0947".__contains__(line[0]) for line in lines)


@pytest.mark.fast
def test_each_script_gets_a_font_that_has_it() -> None:
    assert font_for("Hello, world") == default_font()
    for script, text in TEXTS.items():
        font = font_for(text)
        assert font != default_font() and "Noto" in font.name, (script, font)
        assert missing_glyphs(text) == []
    assert right_to_left(TEXTS["arabic"]) and not right_to_left(TEXTS["hindi"])
    assert right_to_left("שלום עולם")


@pytest.mark.fast
def test_a_script_no_installed_font_has_is_refused_with_what_to_install() -> None:
    text = "story \U0010fffd"  # a private-use code point no font maps
    assert missing_glyphs(text) == ["UNKNOWN"] or missing_glyphs(text)
    with pytest.raises(BadInputError, match="fonts-noto-core"):
        font_for(text)
