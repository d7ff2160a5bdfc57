"""Narration and music: speech per scene placed on the timeline, a music bed ducked under it.

Speech comes from a :class:`TTS`: :class:`EspeakTTS` (a local binary, when installed),
:class:`SilentTTS` (the default that needs nothing) or :class:`OpenAITTS` (any server speaking
OpenAI's ``POST /v1/audio/speech``). All audio is normalised to 48 kHz stereo before mixing.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
import time
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

import httpx

from activities.media import ffmpeg
from storyreel.contracts import ClipAudio
from storyreel.errors import MediaError, ProviderError, ProviderRefusedError

logger = logging.getLogger(__name__)
AUDIO_FORMAT = "aresample=48000,aformat=sample_fmts=fltp:channel_layouts=stereo"
# The planner's speaking rate, so silent narration is as long as spoken narration would be.
WORDS_PER_SECOND = 2.5
SILENT_RATE = 48000
# Tail fade where speech is cut at the end of its scene, to avoid a click.
CUT_FADE = 0.04
# Sums can exceed full scale (normalize=0 keeps levels predictable): a limiter catches it.
LIMIT = "alimiter=limit=0.95:level=0"

Scene = tuple[float, float, str]


@runtime_checkable
class TTS(Protocol):
    """Turns text into an audio file at ``dst`` (any format FFmpeg reads); returns its path."""

    def synthesize(self, text: str, dst: Path, voice: str | None = None) -> Path: ...


def speech_seconds(text: str) -> float:
    """How long ``text`` takes to say at the planner's rate (at least half a second)."""
    return max(0.5, len(text.split()) / WORDS_PER_SECOND)


class SilentTTS:
    """Silence as long as the text would take to say: narration's shape without a voice."""

    def __init__(self, exe: str | None = None) -> None:
        self.exe = exe

    def synthesize(self, text: str, dst: Path, voice: str | None = None) -> Path:  # noqa: ARG002
        # 48 kHz stereo 16-bit zeros, written here: an FFmpeg start-up per scene cost more
        # than the whole file.
        samples = round(round(speech_seconds(text), 3) * SILENT_RATE)
        with wave.open(str(dst), "wb") as out:
            out.setnchannels(2)
            out.setsampwidth(2)
            out.setframerate(SILENT_RATE)
            out.writeframes(bytes(samples * 4))
        return dst


class EspeakTTS:
    """eSpeak NG from PATH (a system package, often absent: check :meth:`available`)."""

    def __init__(
        self,
        binary: str | None = None,
        words_per_minute: int = 165,
        *,
        voice: str | None = None,
        timeout: float = 120.0,
    ) -> None:
        self.binary = binary or shutil.which("espeak-ng") or shutil.which("espeak")
        self.words_per_minute = words_per_minute
        self.voice = voice or "en"
        self.timeout = timeout

    def available(self) -> bool:
        """Whether an espeak binary was found."""
        return self.binary is not None

    def synthesize(self, text: str, dst: Path, voice: str | None = None) -> Path:
        if self.binary is None:
            raise MediaError("espeak-ng is not installed (apt-get install espeak-ng)")
        # Text on stdin: a caption starting with '-' must not be read as an option.
        try:
            result = subprocess.run(
                [self.binary, "-v", voice or self.voice, "-s", str(self.words_per_minute),
                 "-w", str(dst), "--stdin"],
                input=text.encode(), capture_output=True, timeout=self.timeout, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired as error:
            raise MediaError(f"espeak took longer than {self.timeout:g} s") from error
        if result.returncode != 0 or not dst.is_file():
            raise MediaError(f"espeak failed: {result.stderr.decode(errors='replace')[-500:]}")
        return dst


class OpenAITTS:
    """An OpenAI-compatible speech endpoint (OpenAI, Kokoro-FastAPI, LocalAI, ...).

    ``base_url`` is the server root; a trailing ``/v1`` (as in OpenAI client settings) is
    accepted too. 4xx answers other than 408/429 are refusals (not retried). ``timeout`` bounds
    the whole call, not just each read, so a caller knows its longest silence.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        model: str = "tts-1",
        voice: str = "alloy",
        transport: httpx.BaseTransport | None = None,
        *,
        response_format: str = "wav",
        timeout: float = 120.0,
    ) -> None:
        root = base_url.rstrip("/").removesuffix("/v1")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.model, self.voice, self.response_format = model, voice, response_format
        self.timeout = timeout
        self._client = httpx.Client(
            base_url=root, headers=headers, transport=transport, timeout=timeout
        )

    def synthesize(self, text: str, dst: Path, voice: str | None = None) -> Path:
        body = {
            "model": self.model,
            "voice": voice or self.voice,
            "input": text,
            "response_format": self.response_format,
        }
        deadline = time.monotonic() + self.timeout
        try:
            with self._client.stream("POST", "/v1/audio/speech", json=body) as response:
                if response.status_code >= 400:
                    detail = response.read().decode(errors="replace")[:300]
                    message = f"speech endpoint answered {response.status_code}: {detail}"
                    refused = response.status_code < 500 and response.status_code not in (408, 429)
                    raise (ProviderRefusedError if refused else ProviderError)(message)
                with dst.open("wb") as out:
                    for chunk in response.iter_bytes():
                        out.write(chunk)
                        if time.monotonic() > deadline:
                            raise ProviderError(
                                f"speech endpoint took longer than {self.timeout:g} s"
                            )
        except httpx.HTTPError as error:
            raise ProviderError(f"speech endpoint unreachable: {type(error).__name__}") from error
        if dst.stat().st_size == 0:
            raise ProviderError("speech endpoint returned no audio")
        return dst

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def make_tts(
    provider: str,
    *,
    url: str | None = None,
    api_key: str | None = None,
    model: str = "tts-1",
    voice: str | None = None,
    timeout: float = 30.0,
    exe: str | None = None,
) -> TTS:
    """The configured TTS: ``silent``, ``espeak`` (silent with a warning when not installed)
    or ``openai`` (needs ``url``). Close it with :func:`close_tts`."""
    if provider == "openai":
        if not url:
            raise ValueError("tts_provider 'openai' needs tts_url (the speech server's root)")
        return OpenAITTS(url, api_key, model, voice or "alloy", timeout=timeout)
    if provider == "espeak":
        espeak = EspeakTTS(voice=voice, timeout=timeout)
        if espeak.available():
            return espeak
        logger.warning("tts_provider is espeak but espeak-ng is not installed: narration is silent")
    elif provider != "silent":
        raise ValueError(f"unknown tts_provider {provider!r}: use silent, espeak or openai")
    return SilentTTS(exe)


def close_tts(tts: TTS) -> None:
    """Release what a TTS holds (the OpenAI adapter's HTTP client); others hold nothing."""
    if isinstance(tts, OpenAITTS):
        tts.close()


@dataclass(frozen=True)
class Soundtrack:
    """What a video's finished sound is made of, mixed in the pass that encodes its picture.

    ``speech`` holds each scene's spoken words (a file per scene, ``None``: nothing said),
    placed where the scene starts and cut where it ends; ``music`` is a bed looped to the end
    at ``music_volume``, ducked under the voice when ``duck``. ``clip_audio`` says what
    becomes of the clips' own sound: ``"duck"`` (under the voice, like the music), ``"keep"``
    (mixed as it is) or ``"drop"`` (left out).
    """

    speech: Sequence[Path | None] = ()
    music: Path | None = None
    music_volume: float = 0.35
    duck: bool = True
    clip_audio: ClipAudio = "duck"
    voice_over: Path | None = None  # one narration for the whole video, from its start

    def graph(
        self, first_input: int, own: str | None, spans: Sequence[tuple[float, float]]
    ) -> tuple[list[str], list[str]]:
        """FFmpeg input arguments (numbered from ``first_input``) and the chains that make
        ``[a]`` from them and ``own`` (the picture's own sound, a stream label, or ``None``):
        exactly as long as the last span's end. ``spans`` are the scenes' ``(start, end)``."""
        if self.speech and len(self.speech) != len(spans):
            raise MediaError(f"speech for {len(self.speech)} scenes given for {len(spans)}")
        length = spans[-1][1] if spans else 0.0
        inputs: list[str] = []
        placed: list[tuple[str, float, float]] = []
        for speech, (start, end) in zip(self.speech, spans, strict=False):
            if speech is not None:
                placed.append((f"{first_input + len(placed)}:a:0", start, end - start))
                inputs += ["-i", str(speech)]
        if self.voice_over is not None:
            placed.append((f"{first_input + len(placed)}:a:0", 0.0, length))
            inputs += ["-i", str(self.voice_over)]
        parts = place_speech(placed, length, "narration") if placed else []
        music = None
        if self.music is not None:
            music = f"{first_input + len(placed)}:a:0"
            inputs += ["-stream_loop", "-1", "-i", str(self.music)]  # short beds repeat
        parts += sound_mix(
            own,
            "narration" if placed else None,
            music,
            length,
            duck=self.duck,
            music_volume=self.music_volume,
            clip_audio=self.clip_audio,
        )
        return inputs, parts


def place_speech(speech: Sequence[tuple[str, float, float]], length: float, out: str) -> list[str]:
    """Chains putting each stream of speech ``(label, start, seconds)`` at its start, cut with
    a short fade after ``seconds`` (it never talks over the next scene), summed into ``[out]``
    of exactly ``length`` seconds (silence where nothing is said)."""
    parts = [
        f"[{label}]{AUDIO_FORMAT},atrim=end={seconds:.3f},"
        f"afade=t=out:st={max(0.0, seconds - CUT_FADE):.3f}:d={CUT_FADE},"
        f"adelay=delays={round(start * 1000)}:all=1[said{index}]"
        for index, (label, start, seconds) in enumerate(speech)
    ]
    if not parts:
        return [f"anullsrc=r=48000:cl=stereo:d={length:.3f}[{out}]"]
    voices = "".join(f"[said{index}]" for index in range(len(parts)))
    joined = f"{voices}amix=inputs={len(parts)}:duration=longest:normalize=0"
    if len(parts) == 1:
        joined = f"{voices}anull"
    return [*parts, f"{joined},apad=whole_dur={length:.3f},atrim=end={length:.3f}[{out}]"]


def sound_mix(
    own: str | None,
    voice: str | None,
    music: str | None,
    length: float,
    *,
    duck: bool = True,
    music_volume: float = 0.35,
    clip_audio: ClipAudio = "duck",
) -> list[str]:
    """Chains making ``[a]``, exactly ``length`` long, from stream labels (each optional).

    The bed is ``own`` (the picture's sound) plus ``music`` at ``music_volume``; with a
    ``voice``, what is ducked (``music`` when ``duck``, ``own`` when ``clip_audio="duck"``) is
    compressed by the voice (``sidechaincompress``) so speech stays clear, the rest mixed as
    it is. ``clip_audio="drop"`` leaves ``own`` out (it is consumed, so a filter's output
    label stays connected). With nothing at all, ``[a]`` is silence.
    """
    fit = f"apad=whole_dur={length:.3f},atrim=end={length:.3f}"
    parts: list[str] = []
    ducked: list[str] = []  # under the voice
    plain: list[str] = []  # as they are
    if own is not None and clip_audio == "drop":
        parts.append(f"[{own}]anullsink")
    elif own is not None:
        parts.append(f"[{own}]{AUDIO_FORMAT},{fit}[own]")
        (ducked if clip_audio == "duck" else plain).append("[own]")
    if music is not None:
        parts.append(f"[{music}]{AUDIO_FORMAT},volume={music_volume},{fit}[music]")
        (ducked if duck else plain).append("[music]")
    if voice is None:
        # Nothing to duck under: everything is mixed as it is.
        return [*parts, _mixed([*ducked, *plain], "a", length)]
    speech = f"[{voice}]{AUDIO_FORMAT},{fit}"
    if not ducked:
        parts.append(f"{speech}[voice]")
    else:
        # Threshold near -36 dBFS: typical speech (-20..-12 dBFS RMS) pulls the bed down
        # by 12-20 dB; the slow release keeps it down through short pauses.
        parts.append(_mixed(ducked, "bed", length))
        parts.append(f"{speech},asplit=2[voice][key]")
        parts.append(
            "[bed][key]sidechaincompress=threshold=0.015:ratio=6:attack=15:release=350[low]"
        )
        plain.insert(0, "[low]")
    return [*parts, _mixed(["[voice]", *plain], "a", length)]


def _mixed(streams: Sequence[str], out: str, length: float) -> str:
    """A chain summing ``streams`` (all ``length`` long) into ``[out]``: silence if none."""
    if not streams:
        return f"anullsrc=r=48000:cl=stereo:d={length:.3f}[{out}]"
    if len(streams) == 1:
        return f"{streams[0]}anull[{out}]"
    joined = "".join(streams)
    return f"{joined}amix=inputs={len(streams)}:duration=first:normalize=0,{LIMIT}[{out}]"


def narration_track(
    scenes: Sequence[Scene],
    dst: Path,
    tts: TTS,
    *,
    voice: str | None = None,
    total: float | None = None,
    on_progress: ffmpeg.ProgressCallback | None = None,
    exe: str | None = None,
) -> Path:
    """One audio file as long as the video with each scene's speech at its start, placed as
    the stitch places it (:class:`Soundtrack`), for a soundtrack made apart from the picture.

    ``scenes`` are ``(start, duration, text)``; speech longer than its scene is cut (with a
    short fade) so it never talks over the next one. ``total`` defaults to the last scene's end.
    ``on_progress`` hears the fraction of scenes spoken after each one (TTS calls can be slow,
    so a caller can heartbeat between them).
    """
    length = total if total is not None else max((s + d for s, d, _ in scenes), default=0.0)
    if length <= 0:
        raise MediaError("narration needs a positive duration")
    dst.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dst.parent, prefix=".narration-") as work:
        inputs: list[str] = []
        placed: list[tuple[str, float, float]] = []
        for index, (start, duration, text) in enumerate(scenes):
            if not text.strip():
                continue
            speech = tts.synthesize(text, Path(work) / f"scene-{index + 1}.wav", voice)
            if on_progress is not None:
                on_progress((index + 1) / len(scenes))
            placed.append((f"{len(placed)}:a:0", start, duration))
            inputs += ["-i", str(speech)]
        graph = ";".join(place_speech(placed, length, "out"))
        ffmpeg.run([*inputs, "-filter_complex", graph, "-map", "[out]", str(dst)], exe=exe)
    return dst
