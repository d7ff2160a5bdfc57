"""Where a caption goes: its lines and size, and the band it sits on, inside each platform's
safe area. :func:`caption_box` says exactly where pixels change (the frame tests use it)."""

from __future__ import annotations

import textwrap
from functools import partial
from pathlib import Path

from activities.media.lines import fill
from storyreel.contracts import PlatformSpec
from storyreel.fonts import font_for, text_width

Box = tuple[int, int, int, int]

MAX_LINES = 4
# Roboto Bold averages a little over half an em per character; 0.55 leaves room for capitals.
CHAR_WIDTH_EM = 0.55
LINE_HEIGHT_EM = 1.3
# How much of the picture the caption band darkens.
BAND_OPACITY = 0.55


def _vertical(spec: PlatformSpec) -> bool:
    return spec.height > spec.width


def font_size(spec: PlatformSpec, scale: float = 1.0) -> int:
    """Caption size relative to the frame: 5 % of its short side."""
    return max(12, round(min(spec.width, spec.height) * 0.05 * scale))


def band_edges(spec: PlatformSpec) -> tuple[int, int]:
    """Left margin and bottom edge of the caption band.

    9:16 feeds put buttons and the description over the bottom ~20 % and the sides ~6 %;
    16:9 captions sit in the lower third with ~5 % title-safe margins.
    """
    if _vertical(spec):
        return round(spec.width * 0.06), round(spec.height * 0.79)
    return round(spec.width * 0.05), round(spec.height * 0.95)


def _measured(text: str) -> bool:
    """Text beyond Latin, Greek and Cyrillic is wrapped by its shaped width (any script),
    at the breaks its script allows; the three are wrapped by Roboto's average width."""
    return any(ord(char) > 0x4FF for char in text)


def _width(font: Path, size: int, text: str) -> float:
    return text_width(text, font, size)


def wrap_caption(
    caption: str, spec: PlatformSpec, font: Path | None = None
) -> tuple[list[str], int]:
    """The caption's lines and font size: shrink up to 30 % to fit, then cut with an ellipsis.
    ``font`` is the configured one (default Roboto); a script it lacks is drawn, and so
    measured, in the installed font that has it (:func:`storyreel.fonts.font_for`)."""
    words = " ".join(caption.split())
    margin, _ = band_edges(spec)
    lines: list[str] = []
    drawn_in = font_for(words, font) if _measured(words) else None
    for scale in (1.0, 0.85, 0.7):
        size = font_size(spec, scale)
        usable = spec.width - 2 * margin - size  # half an em of padding either side
        if drawn_in is not None:
            lines = fill(words, usable, partial(_width, drawn_in, size))
        else:
            lines = textwrap.wrap(words, width=max(8, int(usable / (size * CHAR_WIDTH_EM))))
        if len(lines) <= MAX_LINES:
            return lines, size
    kept = lines[:MAX_LINES]
    kept[-1] = kept[-1].rstrip(" .,;:") + "…"
    return kept, size


def caption_box(spec: PlatformSpec, lines: int, size: int | None = None) -> Box:
    """Where the caption band is drawn: ``(x, y, w, h)`` in output pixels."""
    size = size or font_size(spec)
    margin, bottom = band_edges(spec)
    height = max(1, lines) * round(size * LINE_HEIGHT_EM) + size  # half an em above and below
    return margin, bottom - height, spec.width - 2 * margin, height
