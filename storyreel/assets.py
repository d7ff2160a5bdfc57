"""A user's own material: what an uploaded file is, found from its content alone.

An upload is written to a file with no name FFmpeg could take a hint from, then FFmpeg reads
it: the container and streams it declares (:mod:`storyreel.probe`), and one decoded frame or a
second of sound, so a text file named ``.png`` or a truncated MP4 is refused with what is wrong
(a 422) rather than failing a run later. The client's file name and content type are kept for
display only.
"""

from __future__ import annotations

import re
import secrets
import subprocess
from enum import StrEnum, auto
from pathlib import Path

from pydantic import BaseModel

from storyreel.errors import BadInputError, MediaError
from storyreel.probe import ffmpeg_exe, parse_probe, probe_text

ASSET_PREFIX = "ast-"
ASSETS_PREFIX = "assets/"  # where uploads live in storage
ASSET_ID = re.compile(r"^ast-[0-9a-f]{24}$")
# Single-picture formats: FFmpeg reads them as a one-frame video.
_STILL_FORMATS = ("image2", "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe")
_FORMAT = re.compile(r"Input #0, ([\w,]+), from")
MAX_PIXELS_SIDE = 8192


class AssetKind(StrEnum):
    image = auto()
    video = auto()
    audio = auto()


class Inspected(BaseModel):
    """What an upload holds."""

    kind: AssetKind
    duration: float | None = None
    width: int | None = None
    height: int | None = None
    format: str


def new_asset_id() -> str:
    return ASSET_PREFIX + secrets.token_hex(12)


def asset_key(user_id: int, asset_id: str) -> str:
    """Where an asset's bytes live in storage (per user, so a key names its owner)."""
    return f"{ASSETS_PREFIX}{user_id}/{asset_id}"


def is_asset_id(value: str) -> bool:
    return bool(ASSET_ID.match(value))


def inspect(path: Path, max_seconds: float, exe: str | None = None) -> Inspected:
    """The kind, length and size of the media at ``path``, or ``BadInputError`` saying why it
    cannot be used: not media FFmpeg reads, no picture or sound, undecodable, too long, too
    large a picture."""
    try:
        text = probe_text(path, exe)
    except MediaError:
        raise BadInputError(
            "file: not an image, video or audio file (FFmpeg cannot read its content)"
        ) from None
    info = parse_probe(text, path)
    found = _FORMAT.search(text)
    container = found[1] if found else "unknown"
    if info.video_codec is not None:
        still = container in _STILL_FORMATS or (info.duration <= 0.05 and container != "gif")
        kind = AssetKind.image if still else AssetKind.video
    elif info.audio_codec is not None:
        kind = AssetKind.audio
    else:
        raise BadInputError("file: holds neither a picture nor sound")
    _decodes(path, kind, exe)
    if kind is not AssetKind.image and info.duration > max_seconds:
        raise BadInputError(
            f"file: {info.duration:.1f} s long; the limit is {max_seconds:.0f} s "
            "(STORYREEL_MAX_ASSET_SECONDS)"
        )
    if max(info.width or 0, info.height or 0) > MAX_PIXELS_SIDE:
        raise BadInputError(
            f"file: {info.width}x{info.height} is larger than {MAX_PIXELS_SIDE} px a side"
        )
    return Inspected(
        kind=kind,
        duration=None if kind is AssetKind.image else round(info.duration, 3),
        width=info.width,
        height=info.height,
        format=container,
    )


def _decodes(path: Path, kind: AssetKind, exe: str | None) -> None:
    """Decode the first frame (a picture) or the first second (sound): a file whose header
    parses but whose data does not is refused now, not at the stitch."""
    take = ["-map", "0:a:0", "-t", "1"] if kind is AssetKind.audio else ["-map", "0:v:0"]
    take += [] if kind is AssetKind.audio else ["-frames:v", "1"]
    result = subprocess.run(
        [ffmpeg_exe(exe), "-hide_banner", "-nostdin", "-v", "error", "-xerror",
         "-i", str(path), *take, "-f", "null", "-"],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    if result.returncode != 0:
        problem = (result.stderr.strip().splitlines() or ["no message"])[-1][:200]
        raise BadInputError(f"file: its {kind.value} data cannot be decoded ({problem})")
