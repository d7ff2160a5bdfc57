"""What every polled HTTP provider adapter shares: retries with backoff, and safe downloads.

``RetryingHTTP`` owns one ``httpx.AsyncClient`` and the retry loop: 429 (honouring
``Retry-After`` or a provider's own hint), 5xx, 408, transport errors and malformed bodies are
retried with jittered exponential backoff; a 429 that outlasts its budget becomes
``ProviderThrottledError``, anything else that does ``ProviderError``, and every message and log
line names the provider. The API key goes only to the API's own origin. Downloads take a URL or
a ``data:`` URI, stream into a ``.part`` file renamed when complete, and follow redirects by
hand so that the key (which may travel in a custom header such as ``x-goog-api-key``, which
httpx would forward across origins) never follows one to another origin.

Every provider client (Replicate, fal, Runware, Veo) is a ``RetryingHTTP``; what differs between
them are hooks: ``provider`` and ``_auth_headers`` say who they are, ``_retry_for`` reads a
provider's own wait hints or rate-limit headers, ``_download_rejection`` words a refused
download, ``follow_api_redirects`` lets httpx follow redirects of API calls.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import email.utils
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self, TypedDict, TypeVar
from urllib.parse import unquote_to_bytes

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from storyreel.errors import (
    PredictionFailedError,
    ProviderError,
    ProviderRejectedError,
    ProviderThrottledError,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
Sleep = Callable[[float], Awaitable[None]]

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
USER_AGENT = "storyreel/0.1"
MAX_REDIRECTS = 5


class Answer(BaseModel):
    """A shape a provider answers in (every client's models derive from it): fields a provider
    adds later are ignored, never refused."""

    model_config = ConfigDict(extra="ignore")


@dataclass(frozen=True)
class Retry:
    """An answer worth asking again, and why."""

    reason: str
    rate_limited: bool = False
    delay: float | None = None


def seconds(value: str | None) -> float | None:
    """Seconds from a header holding a number of seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def retry_for(response: httpx.Response, *wait_headers: str) -> Retry | None:
    """Whether an answer is worth asking again: rate limited, or the service's own trouble.

    A 429 waits as long as ``Retry-After`` says or, without it, the first of ``wait_headers``
    that says anything (a provider's own hint, such as Replicate's ``ratelimit-reset``).
    """
    status = response.status_code
    if status == 429:
        waits = (seconds(response.headers.get(name)) for name in ("retry-after", *wait_headers))
        return Retry(
            "rate limited (HTTP 429)",
            rate_limited=True,
            delay=next((wait for wait in waits if wait is not None), None),
        )
    if status >= 500 or status == 408:
        return Retry(f"HTTP {status}")
    return None


def redact(url: str) -> str:
    """A URL fit for logs and messages: no query (signatures, keys) and no data payload."""
    if url.startswith("data:"):
        return url.split(",", 1)[0] + ",..."
    return url.split("?", 1)[0]


def parsed(model: type[M], response: httpx.Response, name: str | None = None) -> M | Retry:
    """The body of ``response`` as a ``model``, or a ``Retry`` when it is malformed."""
    try:
        return model.model_validate_json(response.content)
    except ValidationError as error:
        return Retry(f"malformed {name or model.__name__} ({error.error_count()} problems)")


def decode_data_uri(uri: str) -> bytes:
    """The bytes a ``data:`` URI carries (base64 or percent-encoded)."""
    header, comma, payload = uri.partition(",")
    try:
        if not comma:
            raise ValueError("no comma")
        if header.endswith(";base64"):
            return base64.b64decode(payload, validate=True)
        return unquote_to_bytes(payload)
    except (ValueError, binascii.Error) as error:
        raise PredictionFailedError(f"output {redact(uri)} is not a valid data URI") from error


class HTTPOptions(TypedDict, total=False):
    """The options of ``RetryingHTTP`` that every provider client passes through."""

    transport: httpx.AsyncBaseTransport | None
    max_retries: int
    max_rate_limit_retries: int
    backoff_base: float
    backoff_max: float
    max_retry_after: float
    timeout: httpx.Timeout | float
    chunk_size: int
    sleep: Sleep
    jitter: Callable[[], float]


class RetryingHTTP:
    """Base of a provider client: one ``httpx.AsyncClient``, the retry loop and downloads.

    Subclasses say who they are (``provider``, used in every message) and how the key travels
    (``key_header`` and ``key_scheme``: ``Authorization: Bearer <key>`` unless they say
    otherwise); ``_auth`` adds it only for URLs on the API's own origin, and ``repr`` shows
    only whether a key is set. ``transport`` lets tests answer with ``httpx.MockTransport``;
    ``sleep`` and ``jitter`` let them retry without waiting.
    """

    provider = "provider"
    follow_api_redirects = False
    """Whether ``_request`` lets httpx follow redirects: safe only when the key travels in
    ``Authorization``, the one header httpx drops on the way to another origin."""

    key_header = "Authorization"
    key_scheme = "Bearer"

    def __init__(
        self,
        base_url: str,
        *,
        key: str | None = None,
        poll_interval: float = 2.0,
        transport: httpx.AsyncBaseTransport | None = None,
        max_retries: int = 5,
        max_rate_limit_retries: int = 10,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        max_retry_after: float = 60.0,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        chunk_size: int = 1 << 20,
        sleep: Sleep = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.poll_interval = poll_interval
        self._key = key
        self.max_retries = max_retries
        self.max_rate_limit_retries = max_rate_limit_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_retry_after = max_retry_after
        self.chunk_size = chunk_size
        self.sleep = sleep
        self.jitter = jitter
        self._origin = httpx.URL(self.base_url)
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            transport=transport,
            timeout=timeout,
            headers={"User-Agent": USER_AGENT},
            follow_redirects=False,  # downloads follow by hand: see _download_once
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        key = "set" if self._key else "unset"
        return f"{type(self).__name__}(base_url={self.base_url!r}, key={key})"

    def _auth_headers(self) -> dict[str, str]:
        if not self._key:
            return {}
        scheme = f"{self.key_scheme} " if self.key_scheme else ""
        return {self.key_header: f"{scheme}{self._key}"}

    def _auth(self, url: str | httpx.URL) -> dict[str, str]:
        target = self._origin.join(url)
        origin = self._origin
        if (target.scheme, target.host, target.port) == (origin.scheme, origin.host, origin.port):
            return self._auth_headers()
        return {}

    def _retry_for(self, response: httpx.Response) -> Retry | None:
        """Whether an answer is worth asking again; downloads ask it of every answer, and so
        should every ``_request`` handler. A client that reads more from an answer (its own
        wait hint, rate-limit headers) overrides this."""
        return retry_for(response)

    def _download_rejection(self, url: str, response: httpx.Response) -> ProviderError:
        """The error for a download answered with a 4xx other than 404 and 410."""
        return ProviderRejectedError(
            f"{self.provider} refused the download of {redact(url)} (HTTP {response.status_code})",
            status_code=response.status_code,
        )

    async def _request(
        self,
        method: str,
        path: str,
        handle: Callable[[httpx.Response], T | Retry],
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> T:
        """One API call, asked again (see ``_retrying``) while ``handle`` answers ``Retry``."""

        async def once() -> T | Retry:
            response = await self._http.request(
                method,
                path,
                json=json,
                params=params,
                headers={**self._auth(path), **(headers or {})},
                follow_redirects=self.follow_api_redirects,
            )
            return handle(response)

        return await self._retrying(f"{method} {path}", once)

    async def _retrying(self, what: str, once: Callable[[], Awaitable[T | Retry]]) -> T:
        failures = limited = 0
        while True:
            try:
                outcome = await once()
            except httpx.TransportError as error:
                outcome = Retry(f"{type(error).__name__}: {error}".rstrip(": "))
            if not isinstance(outcome, Retry):
                return outcome
            if outcome.rate_limited:
                limited += 1
                tries, budget = limited, self.max_rate_limit_retries
                delay = outcome.delay if outcome.delay is not None else self._backoff(limited)
                delay = min(delay, self.max_retry_after)
            else:
                failures += 1
                tries, budget = failures, self.max_retries
                delay = self._backoff(failures)
            if tries > budget:
                message = f"{self.provider} {what}: {outcome.reason}, {tries} times; gave up"
                if outcome.rate_limited:
                    raise ProviderThrottledError(message)
                raise ProviderError(message)
            logger.warning(
                "%s %s: %s; retry %d/%d in %.2fs",
                self.provider,
                what,
                outcome.reason,
                tries,
                budget,
                delay,
            )
            await self.sleep(delay)

    def _backoff(self, tries: int) -> float:
        ceiling = min(self.backoff_max, self.backoff_base * 2.0 ** (tries - 1))
        # Equal jitter: at least half the step, so concurrent clips spread out but still wait.
        return ceiling * (0.5 + 0.5 * self.jitter())

    async def download(
        self, url: str, dest: Path, on_chunk: Callable[[int], None] | None = None
    ) -> int:
        """Stream an output file (URL or data URI) into ``dest``; return the bytes written.

        Memory stays flat whatever the size: the body goes to disk chunk by chunk, into a
        ``.part`` file renamed into place only when complete.
        """
        part = dest.with_name(dest.name + ".part")
        try:
            if url.startswith("data:"):
                data = decode_data_uri(url)
                await asyncio.to_thread(part.write_bytes, data)
                written = len(data)
            else:
                written = await self._retrying(
                    f"GET {redact(url)}", lambda: self._download_once(url, part, on_chunk)
                )
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        part.replace(dest)
        return written

    async def _download_once(
        self, url: str, part: Path, on_chunk: Callable[[int], None] | None
    ) -> int | Retry:
        target = httpx.URL(url)
        for _ in range(MAX_REDIRECTS + 1):
            async with self._http.stream("GET", target, headers=self._auth(target)) as response:
                if response.is_redirect and "location" in response.headers:
                    # Re-decided per hop: the key never follows a redirect to another origin.
                    target = target.join(response.headers["location"])
                    continue
                retry = self._retry_for(response)
                if retry is not None:
                    return retry
                if response.status_code in (404, 410):
                    # Providers delete outputs (Replicate after an hour): only a new
                    # prediction can help.
                    raise PredictionFailedError(f"output {redact(url)} is gone")
                if response.is_error:
                    await response.aread()
                    raise self._download_rejection(url, response)
                return await self._write(response, part, on_chunk)
        raise ProviderError(f"{self.provider} output {redact(url)}: too many redirects")

    async def _write(
        self, response: httpx.Response, part: Path, on_chunk: Callable[[int], None] | None
    ) -> int:
        written = 0
        handle = await asyncio.to_thread(part.open, "wb")
        try:
            async for chunk in response.aiter_bytes(self.chunk_size):
                await asyncio.to_thread(handle.write, chunk)
                written += len(chunk)
                if on_chunk is not None:
                    on_chunk(len(chunk))
        finally:
            await asyncio.to_thread(handle.close)
        return written
