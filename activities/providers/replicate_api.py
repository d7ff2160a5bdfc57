"""A small async client for Replicate's predictions HTTP API, and the prediction it returns.

Only what storyreel needs: create, get, cancel, follow a prediction to its end, and stream its
output to a file. Transient trouble (429, 5xx, transport errors, malformed bodies) is retried
here with backoff; what retrying cannot fix is raised as a typed, non-retryable error so the
clip activity fails fast instead of burning its retry policy.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import email.utils
import logging
import os
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, unquote_to_bytes

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from storyreel.contracts import ClipStatus, PredictionPhase, PredictionUpdate
from storyreel.errors import (
    BadInputError,
    PredictionFailedError,
    ProviderError,
    ProviderRefusedError,
    ProviderRejectedError,
    ProviderThrottledError,
)
from storyreel.webhooks.replicate import is_refusal, tqdm_percent

__all__ = [
    "Prediction",
    "ProviderRejectedError",
    "ProviderThrottledError",
    "ReplicateClient",
    "is_refusal",
    "tqdm_percent",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]

DEFAULT_BASE_URL = "https://api.replicate.com"
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
USER_AGENT = "storyreel/0.1"

_VERSION_ID = re.compile(r"[0-9a-f]{64}")
_MODEL_NAME = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")


class PredictionStatus(StrEnum):
    starting = "starting"
    processing = "processing"
    succeeded = "succeeded"
    failed = "failed"
    canceled = "canceled"
    aborted = "aborted"


class Metrics(BaseModel):
    model_config = ConfigDict(extra="allow")

    predict_time: float | None = None
    total_time: float | None = None


class Prediction(BaseModel):
    """A prediction as Replicate describes it; unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore")

    id: str
    status: PredictionStatus
    model: str | None = None
    version: str | None = None
    input: dict[str, Any] | None = None
    output: Any = None
    error: str | dict[str, Any] | None = None
    logs: str | None = None
    metrics: Metrics | None = None
    urls: dict[str, Any] | None = None
    data_removed: bool = False
    created_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None

    @property
    def done(self) -> bool:
        return self.status not in (PredictionStatus.starting, PredictionStatus.processing)

    @property
    def progress(self) -> float | None:
        return tqdm_percent(self.logs)

    @property
    def predict_time(self) -> float | None:
        return self.metrics.predict_time if self.metrics else None

    def update(self) -> PredictionUpdate:
        """This prediction as one provider-neutral observation."""
        phase = {
            PredictionStatus.starting: PredictionPhase.queued,
            PredictionStatus.processing: PredictionPhase.running,
            PredictionStatus.succeeded: PredictionPhase.succeeded,
            PredictionStatus.canceled: PredictionPhase.canceled,
            PredictionStatus.aborted: PredictionPhase.canceled,
        }.get(self.status, PredictionPhase.failed)
        error = None
        if self.status is PredictionStatus.failed:
            error = self.error_message[:2000]
            if is_refusal(error):
                phase = PredictionPhase.refused
        return PredictionUpdate(
            prediction_id=self.id, phase=phase, progress=self.progress, error=error
        )

    @property
    def clip_status(self) -> ClipStatus:
        match self.status:
            case PredictionStatus.starting:
                return ClipStatus.queued
            case PredictionStatus.processing:
                # Booting a model also reads "processing": only a progress line means frames.
                return ClipStatus.processing if self.progress is None else ClipStatus.rendering
            case PredictionStatus.succeeded:
                return ClipStatus.complete
        return ClipStatus.failed

    @property
    def error_message(self) -> str:
        error = self.error
        if isinstance(error, dict):
            error = error.get("detail") or error.get("message") or error.get("title") or error
        return str(error) if error else f"prediction {self.id} ended {self.status.value}"

    def raise_for_failure(self) -> None:
        """Raise what a prediction that ended without output means for its caller."""
        if self.status in (PredictionStatus.starting, PredictionStatus.processing):
            return
        if self.status is PredictionStatus.failed and is_refusal(self.error_message):
            raise ProviderRefusedError(f"Replicate refused the content: {self.error_message}")
        if self.status is not PredictionStatus.succeeded:
            raise PredictionFailedError(
                f"prediction {self.id} {self.status.value}: {self.error_message}"
            )

    def output_url(self) -> str:
        """The URL (or data URI) of the output file; the first one when there are several."""
        outputs = self.output if isinstance(self.output, list) else [self.output]
        for item in outputs:
            url = item.get("url") if isinstance(item, dict) else item
            if isinstance(url, str) and url.startswith(("https://", "http://", "data:")):
                return url
        why = "its output was removed" if self.data_removed else "no usable output file"
        raise PredictionFailedError(f"prediction {self.id} succeeded with {why}")


@dataclass(frozen=True)
class RateLimit:
    """What the last response said about the rate limit (``ratelimit-*`` headers)."""

    remaining: int | None
    reset: float | None

    @classmethod
    def from_headers(cls, headers: httpx.Headers) -> RateLimit | None:
        remaining, reset = headers.get("ratelimit-remaining"), headers.get("ratelimit-reset")
        if remaining is None and reset is None:
            return None
        return cls(
            int(remaining) if remaining and remaining.isdigit() else None,
            _seconds(reset),
        )


@dataclass(frozen=True)
class _Retry:
    reason: str
    rate_limited: bool = False
    delay: float | None = None


def _seconds(value: str | None) -> float | None:
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


def _create_target(model: str, input: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Where to POST a new prediction of ``model``, and the body to send."""
    if _VERSION_ID.fullmatch(model):
        return "/v1/predictions", {"version": model, "input": input}
    name, colon, version = model.partition(":")
    if not _MODEL_NAME.fullmatch(name) or (colon and not version):
        raise BadInputError(
            f"Replicate model {model!r} is not 'owner/name', 'owner/name:version' or a version id"
        )
    if version:
        return "/v1/predictions", {"version": version, "input": input}
    return f"/v1/models/{name}/predictions", {"input": input}


def _redact(url: str) -> str:
    """A URL fit for logs and messages: no query (signatures) and no data URI payload."""
    if url.startswith("data:"):
        return url.split(",", 1)[0] + ",..."
    return url.split("?", 1)[0]


class ReplicateClient:
    """An async client for Replicate's predictions API over one ``httpx.AsyncClient``.

    ``transport`` lets tests answer with ``httpx.MockTransport``; ``sleep`` and ``jitter`` let
    them retry without waiting. The token is sent only to the API's own origin and is never
    logged, not even in ``repr``.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        api_token: str | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        poll_interval: float = 2.0,
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
        self.max_retries = max_retries
        self.max_rate_limit_retries = max_rate_limit_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_retry_after = max_retry_after
        self.chunk_size = chunk_size
        self.sleep = sleep
        self.jitter = jitter
        self.rate_limit: RateLimit | None = None
        self._token = api_token
        self._origin = httpx.URL(self.base_url)
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            transport=transport,
            timeout=timeout,
            headers={"User-Agent": USER_AGENT},
            follow_redirects=True,  # output files may redirect; httpx drops auth off-origin
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **options: Any) -> ReplicateClient:
        """A client configured like the official one: ``REPLICATE_API_TOKEN``, ``_BASE_URL``."""
        env = os.environ if environ is None else environ
        return cls(
            env.get("REPLICATE_BASE_URL") or DEFAULT_BASE_URL,
            env.get("REPLICATE_API_TOKEN") or None,
            **options,
        )

    def __repr__(self) -> str:
        token = "set" if self._token else "unset"
        return f"ReplicateClient(base_url={self.base_url!r}, token={token})"

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> ReplicateClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def create(
        self,
        model: str,
        input: dict[str, Any],
        *,
        wait: int | None = None,
        cancel_after: str | None = None,
        webhook: str | None = None,
        webhook_events_filter: tuple[str, ...] = ("start", "logs", "completed"),
    ) -> Prediction:
        """Start a prediction of ``owner/name``, ``owner/name:version`` or a version id.

        With ``webhook`` Replicate POSTs the prediction there on the events of
        ``webhook_events_filter`` (signed: see ``storyreel.webhooks``).
        """
        path, body = _create_target(model, input)
        if webhook:
            body["webhook"] = webhook
            body["webhook_events_filter"] = list(webhook_events_filter)
        headers = {}
        if wait is not None:
            headers["Prefer"] = f"wait={wait}"
        if cancel_after:
            # Replicate stops the prediction itself after this long, even if we never return.
            headers["Cancel-After"] = cancel_after
        return await self._call("POST", path, body, headers)

    async def get(self, prediction_id: str) -> Prediction:
        try:
            return await self._call("GET", f"/v1/predictions/{quote(prediction_id, safe='')}")
        except ProviderRejectedError as error:
            if error.status_code != 404:
                raise
            # An id resumed from a heartbeat that Replicate no longer knows: make a new one.
            raise PredictionFailedError(f"prediction {prediction_id} not found") from error

    async def cancel(self, prediction_id: str) -> Prediction:
        path = f"/v1/predictions/{quote(prediction_id, safe='')}/cancel"
        return await self._call("POST", path)

    async def follow(
        self, prediction_id: str, on_poll: Callable[[Prediction], None] | None = None
    ) -> Prediction:
        """Poll every ``poll_interval`` until the prediction ends; return it if it succeeded.

        ``on_poll`` sees every still-running state. A prediction that ended otherwise raises
        ``ProviderRefusedError`` (content refused) or ``PredictionFailedError``.
        """
        while True:
            prediction = await self.get(prediction_id)
            if prediction.done:
                prediction.raise_for_failure()
                return prediction
            if on_poll is not None:
                on_poll(prediction)
            await self.sleep(self.poll_interval)

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
                data = _decode_data_uri(url)
                await asyncio.to_thread(part.write_bytes, data)
                written = len(data)
            else:
                written = await self._retrying(
                    f"GET {_redact(url)}", lambda: self._download_once(url, part, on_chunk)
                )
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        part.replace(dest)
        return written

    async def _download_once(
        self, url: str, part: Path, on_chunk: Callable[[int], None] | None
    ) -> int | _Retry:
        async with self._http.stream("GET", url, headers=self._auth(url)) as response:
            self._note_rate_limit(response)
            retry = _should_retry(response)
            if retry is not None:
                return retry
            if response.status_code in (404, 410):
                # Replicate deletes outputs after an hour: only a new prediction can help.
                raise PredictionFailedError(f"output {_redact(url)} is gone")
            if response.is_error:
                await response.aread()
                raise _rejection("GET", _redact(url), response)
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

    async def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Prediction:
        async def once() -> Prediction | _Retry:
            response = await self._http.request(
                method, path, json=body, headers={**self._auth(path), **(headers or {})}
            )
            self._note_rate_limit(response)
            retry = _should_retry(response)
            if retry is not None:
                return retry
            if response.is_error:
                raise _rejection(method, path, response)
            try:
                return Prediction.model_validate_json(response.content)
            except ValidationError as error:
                return _Retry(f"malformed prediction ({error.error_count()} problems)")

        return await self._retrying(f"{method} {path}", once)

    async def _retrying(self, what: str, once: Callable[[], Awaitable[T | _Retry]]) -> T:
        failures = limited = 0
        while True:
            try:
                outcome = await once()
            except httpx.TransportError as error:
                outcome = _Retry(f"{type(error).__name__}: {error}".rstrip(": "))
            if not isinstance(outcome, _Retry):
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
                message = f"Replicate {what}: {outcome.reason}, {tries} times; gave up"
                if outcome.rate_limited:
                    raise ProviderThrottledError(message)
                raise ProviderError(message)
            logger.warning(
                "Replicate %s: %s; retry %d/%d in %.2fs", what, outcome.reason, tries, budget, delay
            )
            await self.sleep(delay)

    def _backoff(self, tries: int) -> float:
        ceiling = min(self.backoff_max, self.backoff_base * 2.0 ** (tries - 1))
        # Equal jitter: at least half the step, so concurrent clips spread out but still wait.
        return ceiling * (0.5 + 0.5 * self.jitter())

    def _auth(self, url: str) -> dict[str, str]:
        target = self._origin.join(url)
        same_origin = (target.scheme, target.host, target.port) == (
            self._origin.scheme,
            self._origin.host,
            self._origin.port,
        )
        if self._token and same_origin:
            return {"Authorization": f"Bearer {self._token}"}
        return {}

    def _note_rate_limit(self, response: httpx.Response) -> None:
        self.rate_limit = RateLimit.from_headers(response.headers) or self.rate_limit


def _should_retry(response: httpx.Response) -> _Retry | None:
    """Whether an answer is worth asking again: rate limited, or the service's own trouble."""
    status = response.status_code
    if status == 429:
        headers = response.headers
        delay = _seconds(headers.get("retry-after"))
        if delay is None:
            delay = _seconds(headers.get("ratelimit-reset"))
        return _Retry("rate limited (HTTP 429)", rate_limited=True, delay=delay)
    if status >= 500 or status == 408:
        return _Retry(f"HTTP {status}")
    return None


def _rejection(method: str, path: str, response: httpx.Response) -> ProviderError:
    """The error for a 4xx answer, carrying the provider's own words (RFC 7807 or not)."""
    title = detail = None
    try:
        problem = response.json()
    except ValueError:
        problem = None
    if isinstance(problem, dict):
        title = problem.get("title")
        detail = problem.get("detail") or problem.get("message") or problem.get("error")
    elif response.text.strip():
        detail = response.text.strip()[:300]
    message = f"Replicate rejected {method} {path} (HTTP {response.status_code}"
    message += f" {title})" if title else ")"
    if detail:
        message += f": {detail}"
    if detail and is_refusal(str(detail)):
        return ProviderRefusedError(message)
    return ProviderRejectedError(
        message, status_code=response.status_code, detail=str(detail) if detail else None
    )


def _decode_data_uri(uri: str) -> bytes:
    header, comma, payload = uri.partition(",")
    try:
        if not comma:
            raise ValueError("no comma")
        if header.endswith(";base64"):
            return base64.b64decode(payload, validate=True)
        return unquote_to_bytes(payload)
    except (ValueError, binascii.Error) as error:
        raise PredictionFailedError(f"output {_redact(uri)} is not a valid data URI") from error
