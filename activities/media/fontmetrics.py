"""Advance widths of a TrueType font, enough to place word highlights under drawn text.

Reads the ``cmap`` (formats 4 and 12) and ``hmtx`` tables with :mod:`struct`: no dependency for
the one number word captions need, how wide a word is at a size. Kerning is ignored (a pixel or
two per word at caption sizes), which is why each word is drawn at its own measured position.
"""

from __future__ import annotations

import struct
from functools import lru_cache
from pathlib import Path

from storyreel.errors import MediaError


class FontMetrics:
    """Glyph advances of one font, in font units (``units_per_em`` to the em)."""

    def __init__(self, data: bytes) -> None:
        try:
            tables = self._tables(data)
            self.units_per_em: int = struct.unpack_from(">H", data, tables["head"] + 18)[0]
            metrics = struct.unpack_from(">H", data, tables["hhea"] + 34)[0]
            hmtx = tables["hmtx"]
            self._advances = [
                struct.unpack_from(">H", data, hmtx + 4 * index)[0] for index in range(metrics)
            ]
            self._glyphs = self._cmap(data, tables["cmap"])
        except (KeyError, struct.error) as error:
            raise MediaError(f"cannot read the font's metrics: {error}") from None

    @staticmethod
    def _tables(data: bytes) -> dict[str, int]:
        count = struct.unpack_from(">H", data, 4)[0]
        tables: dict[str, int] = {}
        for index in range(count):
            tag, _, offset, _ = struct.unpack_from(">4sIII", data, 12 + 16 * index)
            tables[tag.decode("latin-1")] = offset
        return tables

    @staticmethod
    def _cmap(data: bytes, cmap: int) -> dict[int, int]:
        count = struct.unpack_from(">H", data, cmap + 2)[0]
        subtables: dict[tuple[int, int], int] = {}
        for index in range(count):
            platform, encoding, offset = struct.unpack_from(">HHI", data, cmap + 4 + 8 * index)
            subtables[(platform, encoding)] = cmap + offset
        for key in ((3, 10), (0, 4), (3, 1), (0, 3)):
            if key in subtables:
                start = subtables[key]
                fmt = struct.unpack_from(">H", data, start)[0]
                if fmt == 12:
                    return _format12(data, start)
                if fmt == 4:
                    return _format4(data, start)
        raise MediaError("the font has no Unicode character map")

    def advance(self, char: str, size: float) -> float:
        glyph = self._glyphs.get(ord(char), 0)
        units: int = self._advances[min(glyph, len(self._advances) - 1)]
        return units * size / self.units_per_em

    def width(self, text: str, size: float) -> float:
        """Pixels ``text`` advances at ``size`` pixels to the em."""
        return sum(self.advance(char, size) for char in text)


def _format4(data: bytes, start: int) -> dict[int, int]:
    segments = struct.unpack_from(">H", data, start + 6)[0] // 2
    ends = start + 14
    starts = ends + 2 * segments + 2
    deltas = starts + 2 * segments
    ranges = deltas + 2 * segments
    glyphs: dict[int, int] = {}
    for segment in range(segments):
        end = struct.unpack_from(">H", data, ends + 2 * segment)[0]
        first = struct.unpack_from(">H", data, starts + 2 * segment)[0]
        delta = struct.unpack_from(">h", data, deltas + 2 * segment)[0]
        range_at = ranges + 2 * segment
        offset = struct.unpack_from(">H", data, range_at)[0]
        for code in range(first, min(end, 0xFFFE) + 1):
            if offset == 0:
                glyph = (code + delta) & 0xFFFF
            else:
                at = range_at + offset + 2 * (code - first)
                glyph = struct.unpack_from(">H", data, at)[0]
                glyph = (glyph + delta) & 0xFFFF if glyph else 0
            glyphs[code] = glyph
    return glyphs


def _format12(data: bytes, start: int) -> dict[int, int]:
    groups = struct.unpack_from(">I", data, start + 12)[0]
    glyphs: dict[int, int] = {}
    for index in range(groups):
        first, last, glyph = struct.unpack_from(">III", data, start + 16 + 12 * index)
        for code in range(first, min(last, 0x2FFFF) + 1):
            glyphs[code] = glyph + code - first
    return glyphs


@lru_cache(maxsize=8)
def font_metrics(path: Path) -> FontMetrics:
    return FontMetrics(path.read_bytes())
