"""B10: a very large upload through ``POST /v1/assets`` keeps the API's memory flat.

The body is a multipart upload of a valid WAV file (a header, then silence) made on the fly,
so the bench needs no 2 GiB file on disk; the API process's resident memory is sampled while
it streams, parses, probes and stores it. The asset is deleted afterwards.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from harness import Stack

CHUNK = 1 << 20
BOUNDARY = "storyreel-bench-upload"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# 8 channels of 32-bit samples at 384 kHz: 2 GiB of it lasts under three minutes, inside the
# default STORYREEL_MAX_ASSET_SECONDS.
CHANNELS, BITS, RATE = 8, 32, 384_000


def wav_header(data_bytes: int) -> bytes:
    """A PCM WAV header for ``data_bytes`` of samples."""
    block = CHANNELS * BITS // 8
    return (
        b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, CHANNELS, RATE, RATE * block, block, BITS)
        + b"data" + struct.pack("<I", data_bytes)
    )  # fmt: skip


async def body(data_bytes: int) -> AsyncIterator[bytes]:
    yield (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n"
    ).encode()
    yield wav_header(data_bytes)
    silence = bytes(CHUNK)
    left = data_bytes
    while left > 0:
        yield silence[: min(CHUNK, left)]
        left -= CHUNK
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


async def b10(s: Stack, gib: float) -> dict[str, Any]:
    """Upload ``gib`` GiB; the API's peak resident memory above where it started."""
    pid = s.pids["api"]
    data_bytes = int(gib * 1024**3) // 32 * 32
    before = rss_mib(pid)
    peak = before
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_mib(pid))
            await asyncio.sleep(0.1)

    sampler = asyncio.create_task(sample())
    started = time.monotonic()
    headers = {**s.headers, "content-type": f"multipart/form-data; boundary={BOUNDARY}"}
    timeout = httpx.Timeout(120.0)
    async with httpx.AsyncClient(base_url=s.api_url, timeout=timeout, headers=s.headers) as http:
        answer = await http.post("/v1/assets", content=body(data_bytes), headers=headers)
        seconds = time.monotonic() - started
        done.set()
        await sampler
        answer.raise_for_status()
        asset = answer.json()
        await http.delete(f"/v1/assets/{asset['id']}")
    growth = peak - before
    return {
        "bytes": data_bytes + 44,
        "seconds": round(seconds, 2),
        "mib_per_second": round((data_bytes >> 20) / seconds, 1),
        "rss_before_mib": round(before, 1),
        "rss_peak_mib": round(peak, 1),
        "rss_growth_mib": round(growth, 1),
        "kind": asset["kind"],
        "duration": asset["duration"],
        "ratio": growth / 64,
    }
