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
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

import httpx

from activities.media import ffmpeg
from storyreel.errors import MediaError, ProviderError, ProviderRefusedError

logger = logging.getLogger(__name__)
AUDIO_FORMAT = "aresample=48000,aformat=sample_fmts=fltp:channel_layouts=stereo"
# The planner's speaking rate, so silent narration is as long as spoken narration would be.
WORDS_PER_SECOND = 2.5
SILENT_RATE = 48000
# Tail fade where speech is cut at the end of its scene, to avoid a click.
CUT_FADE = 0.04

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


def narration_track(
    scenes: Sequence[Scene],
    dst: Path,
    tts: TTS,
    *,
    voice: str | None = None,
    total: float | None = None,
    on_progress: ffmpeg.ProgressCallback | None = None,
    exe: str | None = None,
    spoken: Sequence[Path | None] | None = None,
) -> Path:
    """One audio file as long as the video with each scene's speech at its start.

    ``scenes`` are ``(start, duration, text)``; speech longer than its scene is cut (with a
    short fade) so it never talks over the next one. ``total`` defaults to the last scene's end.
    ``on_progress`` hears the fraction of scenes spoken after each one (TTS calls can be slow,
    so a caller can heartbeat between them). ``spoken`` holds speech already made for each
    scene (word captions time themselves on it first); those scenes are not spoken again.
    """
    length = total if total is not None else max((s + d for s, d, _ in scenes), default=0.0)
    if length <= 0:
        raise MediaError("narration needs a positive duration")
    dst.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dst.parent, prefix=".narration-") as work:
        inputs: list[str] = []
        parts: list[str] = []
        for index, (start, duration, text) in enumerate(scenes):
            if not text.strip():
                continue
            made = spoken[index] if spoken is not None else None
            speech = made or tts.synthesize(text, Path(work) / f"scene-{index + 1}.wav", voice)
            if on_progress is not None:
                on_progress((index + 1) / len(scenes))
            label = len(parts)
            inputs += ["-i", str(speech)]
            parts.append(
                f"[{label}:a:0]{AUDIO_FORMAT},atrim=end={duration:.3f},"
                f"afade=t=out:st={max(0.0, duration - CUT_FADE):.3f}:d={CUT_FADE},"
                f"adelay=delays={round(start * 1000)}:all=1[s{label}]"
            )
        if parts:
            voices = "".join(f"[s{i}]" for i in range(len(parts)))
            joined = f"{voices}amix=inputs={len(parts)}:duration=longest:normalize=0"
            if len(parts) == 1:
                joined = f"{voices}anull"
            parts.append(f"{joined},apad=whole_dur={length:.3f},atrim=end={length:.3f}[out]")
        else:
            parts.append(f"anullsrc=r=48000:cl=stereo:d={length:.3f}[out]")
        ffmpeg.run(
            [*inputs, "-filter_complex", ";".join(parts), "-map", "[out]", str(dst)], exe=exe
        )
    return dst


def mix(
    video: Path,
    dst: Path,
    narration: Path | None,
    music: Path | None,
    *,
    duck: bool = True,
    music_volume: float = 0.35,
    on_progress: ffmpeg.ProgressCallback | None = None,
    exe: str | None = None,
) -> None:
    """Give ``video`` its final AAC soundtrack; the picture is copied untouched.

    The bed is the video's own sound plus ``music`` (looped, at ``music_volume``); with
    narration and ``duck`` the bed is compressed by the voice (``sidechaincompress``) so
    speech stays clear. Without narration or music the video keeps its own sound, or gets
    silence: every output has an audio stream exactly as long as the picture.
    """
    info = ffmpeg.probe(video, exe)
    length = f"{info.duration:.3f}"
    fit = f"apad=whole_dur={length},atrim=end={length}"
    inputs, parts, bed = ["-i", str(video)], [], []
    if info.audio_codec:
        parts.append(f"[0:a:0]{AUDIO_FORMAT},{fit}[own]")
        bed.append("[own]")
    voice = None
    if narration is not None:
        voice, inputs = "1", [*inputs, "-i", str(narration)]
    if music is not None:
        index = 1 if voice is None else 2
        parts.append(f"[{index}:a:0]{AUDIO_FORMAT},volume={music_volume},{fit}[music]")
        inputs += ["-stream_loop", "-1", "-i", str(music)]  # short beds repeat to the end
        bed.append("[music]")
    # Sums can exceed full scale (normalize=0 keeps levels predictable): a limiter catches it.
    limit = "alimiter=limit=0.95:level=0"
    if len(bed) == 2:
        parts.append(f"[own][music]amix=inputs=2:duration=longest:normalize=0,{limit}[bed]")
    elif bed:
        parts.append(f"{bed[0]}anull[bed]")
    if voice is None:
        parts.append("[bed]anull[a]" if bed else f"anullsrc=r=48000:cl=stereo:d={length}[a]")
    elif not bed:
        parts.append(f"[{voice}:a:0]{AUDIO_FORMAT},{fit}[a]")
    else:
        speech = f"[{voice}:a:0]{AUDIO_FORMAT},{fit}"
        if duck:
            # Threshold near -36 dBFS: typical speech (-20..-12 dBFS RMS) pulls the bed down
            # by 12-20 dB; the slow release keeps it down through short pauses.
            parts.append(f"{speech},asplit=2[voice][key]")
            parts.append(
                "[bed][key]sidechaincompress=threshold=0.015:ratio=6:attack=15:release=350[low]"
            )
        else:
            parts += [f"{speech}[voice]", "[bed]anull[low]"]
        parts.append(f"[voice][low]amix=inputs=2:duration=first:normalize=0,{limit}[a]")
    dst.parent.mkdir(parents=True, exist_ok=True)
    ffmpeg.run(
        [
            *inputs, "-filter_complex", ";".join(parts), "-map", "0:v:0", "-map", "[a]",
            "-c:v", "copy", "-c:a", "aac", "-b:a", "192k", "-t", length,
            "-movflags", "+faststart", str(dst),
        ],
        duration=info.duration,
        on_progress=on_progress,
        exe=exe,
    )  # fmt: skip
