"""Word captions: the narration a page at a time, the word being said on a highlight."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from activities.media import ffmpeg
from activities.media.layout import LINE_HEIGHT_EM, Box, band_edges, caption_box, font_size
from activities.media.lines import breaks_anywhere, units
from storyreel.contracts import PlatformSpec
from storyreel.fonts import font_for, font_height_em, right_to_left, text_width

# Word captions show the narration a page at a time, so the line stays short and readable.
WORD_PAGE_LINES = 2
HIGHLIGHT = "0x7C3AED@0.92"
HIGHLIGHT_EM = 1.25  # the highlight box's height, at most, in ems
# Extra weight of a pause after punctuation, in characters (timing by character count).
PAUSE_CHARS = 4


@dataclass(frozen=True)
class Word:
    """One spoken word and when it is said, in seconds from the clip's start."""

    text: str
    start: float
    end: float
    spaced: bool = True  # a space follows it (Chinese and Japanese words have none)


# Chinese and Japanese have no spaces: their "words" are runs of this many characters at most.
CLOSE_WORD_CHARS = 3


def spoken_words(text: str) -> list[tuple[str, bool]]:
    """The words of ``text`` as captions highlight them, each with whether a space follows:
    split at spaces, and Chinese or Japanese runs into a few characters at a time."""
    out: list[tuple[str, bool]] = []
    for token in text.split():
        if not any(breaks_anywhere(char) for char in token):
            out.append((token, True))
            continue
        pieces = [""]
        for unit in units(token):
            if pieces[-1] and len(pieces[-1]) + len(unit) > CLOSE_WORD_CHARS:
                pieces.append("")
            pieces[-1] += unit
        out.extend((piece, False) for piece in pieces[:-1])
        out.append((pieces[-1], True))
    return out


def spread_words(text: str, seconds: float, start: float = 0.0) -> list[Word]:
    """An honest approximation of speech timing: ``seconds`` shared out by character count
    (a word's letters plus the space after it, and a pause after punctuation)."""
    words = spoken_words(text)
    weights = [
        len(word) + spaced + (PAUSE_CHARS if word[-1] in ",.;:!?…、。，！？" else 0)
        for word, spaced in words
    ]
    total = sum(weights) or 1
    out, clock = [], start
    for (word, spaced), weight in zip(words, weights, strict=True):
        length = seconds * weight / total
        out.append(Word(word, round(clock, 3), round(clock + length, 3), spaced))
        clock += length
    return out


@dataclass(frozen=True)
class PlacedWord:
    word: Word
    page: int
    line: int
    x: float
    width: float


def place_words(
    words: Sequence[Word], spec: PlatformSpec, font: Path | None = None
) -> tuple[list[PlacedWord], int, int]:
    """Lay the words out in centred lines of shaped width, ``WORD_PAGE_LINES`` lines to a
    page, right to left for a right-to-left script; returns the placed words, the lines of the
    fullest page and the font size. ``font`` is the configured one (see :func:`wrap_caption`).
    """
    size = font_size(spec)
    drawn_in = font_for(" ".join(word.text for word in words), font)
    margin, _ = band_edges(spec)
    usable = spec.width - 2 * margin - size
    space = text_width(" ", drawn_in, size)
    lines: list[list[tuple[Word, float]]] = [[]]
    used = 0.0
    for word in words:
        width = text_width(word.text, drawn_in, size)
        gap = space if lines[-1] and lines[-1][-1][0].spaced else 0.0
        if lines[-1] and used + gap + width > usable:
            lines.append([])
            used, gap = 0.0, 0.0
        used += gap + width
        lines[-1].append((word, width))
    backwards = right_to_left("".join(word.text for word in words))
    placed: list[PlacedWord] = []
    for number, line in enumerate(lines):
        gaps = [space if word.spaced else 0.0 for word, _ in line[:-1]]
        total = sum(width for _, width in line) + sum(gaps)
        x = (spec.width - total) / 2
        for (word, width), gap in zip(line, [*gaps, 0.0], strict=True):
            at = spec.width - x - width if backwards else x
            placed.append(
                PlacedWord(word, number // WORD_PAGE_LINES, number % WORD_PAGE_LINES, at, width)
            )
            x += width + gap
    return placed, min(WORD_PAGE_LINES, len(lines)), size


def _between(start: float, end: float) -> str:
    return f"enable='between(t,{start:.3f},{end:.3f})'"


def words_chain(
    words: Sequence[Word], spec: PlatformSpec, font: Path | None, work: Path, length: float
) -> tuple[Box, str]:
    """Where the band goes, and the filters drawing ``words`` karaoke style over it: the box
    of the word being said (under the text), and each word at its measured place while its
    page is on screen."""
    placed, lines, size = place_words(words, spec, font)
    drawn_in = font_for(" ".join(word.text for word in words), font)
    height = font_height_em(drawn_in)
    x, y, w, h = caption_box(spec, lines, size)
    pitch = round(size * LINE_HEIGHT_EM)
    inset = (pitch - size * height) / 2
    pages = sorted({item.page for item in placed})
    starts = {page: min(i.word.start for i in placed if i.page == page) for page in pages}
    shown = {
        page: (
            0.0 if n == 0 else starts[page],
            starts[pages[n + 1]] if n + 1 < len(pages) else length + 1,
        )
        for n, page in enumerate(pages)
    }
    fontfile = ffmpeg.filter_path(drawn_in)
    boxes, texts = [], []
    page_lines = {page: 1 + max(i.line for i in placed if i.page == page) for page in pages}
    for index, item in enumerate(placed):
        # A page with fewer lines than the band sits in its middle.
        centre = (lines - page_lines[item.page]) * pitch / 2
        top = y + size / 2 + item.line * pitch + inset + centre
        pad = size * 0.14
        # The highlight spans the line's letters: a font with tall marks (Arabic's is 2.1 em)
        # gets a box of Latin height about the middle of its line.
        mark = min(height, HIGHLIGHT_EM)
        boxes.append(
            f"drawbox=x={item.x - pad:.0f}:y={top + size * (height - mark) / 2 - pad * 0.6:.0f}"
            f":w={item.width + 2 * pad:.0f}"
            f":h={size * mark + pad * 1.2:.0f}:color={HIGHLIGHT}:t=fill"
            f":{_between(item.word.start, item.word.end)}"
        )
        text = work / f"word-{index:03d}.txt"
        text.write_text(item.word.text, encoding="utf-8")
        texts.append(
            f"drawtext=fontfile={fontfile}:textfile={ffmpeg.filter_path(text)}:expansion=none"
            f":fontsize={size}:fontcolor=white:borderw=2:bordercolor=black@0.6:y_align=font"
            f":x={item.x:.0f}:y={top:.0f}:{_between(*shown[item.page])}"
        )
    return (x, y, w, h), ",".join([*boxes, *texts])
