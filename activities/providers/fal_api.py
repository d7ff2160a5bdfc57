"""A small async client for fal's queue API (``queue.fal.run``), and the shapes it answers.

Only what storyreel needs: submit, status, result, cancel, and streaming an output file to
disk. A model id may name an endpoint below its app (``fal-ai/kling-video/v2/master/
text-to-video``): fal wants the whole id on submit but only the app (``fal-ai/kling-video``) in
the status, result and cancel URLs. Transient trouble (429, 5xx, transport errors, malformed
bodies) is retried here with backoff; what retrying cannot fix is raised as a typed error.
A failed request answers its result URL with an error status: a model error (``detail`` list,
e.g. ``content_policy_violation``) or a request error (``error_type``); those are the request's
outcome, never retried, while a bare 5xx is the service's own trouble and is.
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
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, unquote_to_bytes

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from activities.providers.replicate_api import tqdm_percent
from storyreel.contracts import ClipStatus, PredictionPhase, PredictionUpdate
from storyreel.errors import (
    BadInputError,
    PredictionFailedError,
    ProviderError,
    ProviderRefusedError,
    ProviderRejectedError,
    ProviderThrottledError,
)
from storyreel.webhooks.fal import error_text, is_refusal

__all__ = ["FalClient", "QueueState", "QueueStatus", "Submission", "app_id"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]

DEFAULT_QUEUE_URL = "https://queue.fal.run"
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
USER_AGENT = "storyreel/0.1"
# Namespaces whose apps are named by three segments (``workflows/owner/name``).
_NAMESPACES = frozenset({"workflows", "comfy"})
_SEGMENT = re.compile(r"[A-Za-z0-9_.-]+")


def model_path(model: str) -> str:
    """``model`` checked to be a fal model id (``owner/app[/endpoint...]``)."""
    parts = model.split("/")
    width = 3 if parts[0] in _NAMESPACES else 2
    if len(parts) < width or not all(
        _SEGMENT.fullmatch(part) and part not in (".", "..") for part in parts
    ):
        raise BadInputError(f"fal model {model!r} is not 'owner/app' or 'owner/app/endpoint'")
    return model


def app_id(model: str) -> str:
    """The app of a model id, which names its queue in status, result and cancel URLs."""
    parts = model_path(model).split("/")
    return "/".join(parts[: 3 if parts[0] in _NAMESPACES else 2])


class QueueState(StrEnum):
    in_queue = "IN_QUEUE"
    in_progress = "IN_PROGRESS"
    completed = "COMPLETED"


class RequestLog(BaseModel):
    model_config = ConfigDict(extra="ignore")

    message: str = ""
    level: str | None = None
    timestamp: str | None = None


class Submission(BaseModel):
    """What a submit answers; the URLs are fal's own, for reference only (we build ours)."""

    model_config = ConfigDict(extra="ignore")

    request_id: str = Field(min_length=1, max_length=300)
    response_url: str | None = None
    status_url: str | None = None
    cancel_url: str | None = None
    queue_position: int | None = None


class QueueStatus(BaseModel):
    """One status read; ``logs`` only when asked for, ``error`` only on a failed request."""

    model_config = ConfigDict(extra="ignore")

    status: QueueState
    request_id: str | None = None
    queue_position: int | None = None
    logs: list[RequestLog] | None = None
    metrics: dict[str, Any] | None = None
    error: str | None = None
    error_type: str | None = None

    @property
    def done(self) -> bool:
        return self.status is QueueState.completed

    @property
    def failed(self) -> bool:
        return self.done and (self.error is not None or self.error_type is not None)

    @property
    def progress(self) -> float | None:
        """Percent done from the last tqdm-style line of the logs (when the model prints one)."""
        return tqdm_percent("\n".join(log.message for log in self.logs or ()))

    @property
    def inference_time(self) -> float | None:
        value = (self.metrics or {}).get("inference_time")
        return float(value) if isinstance(value, int | float) else None

    @property
    def clip_status(self) -> ClipStatus:
        if self.status is QueueState.in_queue:
            return ClipStatus.queued
        if self.status is QueueState.in_progress:
            return ClipStatus.processing if self.progress is None else ClipStatus.rendering
        return ClipStatus.failed if self.failed else ClipStatus.complete

    def error_message(self, request_id: str) -> str:
        words = [text for text in (self.error, self.error_type) if text]
        return ": ".join(words) or f"fal request {request_id} failed"

    def update(self, request_id: str) -> PredictionUpdate:
        """This status as one provider-neutral observation.

        COMPLETED reads ``succeeded`` unless the answer itself carries an error: a failure the
        status does not show is found when the result is read.
        """
        phase = {
            QueueState.in_queue: PredictionPhase.queued,
            QueueState.in_progress: PredictionPhase.running,
            QueueState.completed: PredictionPhase.succeeded,
        }[self.status]
        error = None
        if self.failed:
            error = self.error_message(request_id)[:2000]
            refused = is_refusal(self.error, self.error_type)
            phase = PredictionPhase.refused if refused else PredictionPhase.failed
        return PredictionUpdate(
            prediction_id=request_id, phase=phase, progress=self.progress, error=error
        )

    def raise_for_failure(self, request_id: str) -> None:
        if not self.failed:
            return
        message = self.error_message(request_id)
        if is_refusal(self.error, self.error_type):
            raise ProviderRefusedError(f"fal refused the content: {message}")
        raise PredictionFailedError(f"fal request {request_id} failed: {message}")


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


def _should_retry(response: httpx.Response) -> _Retry | None:
    """Whether an answer is worth asking again: rate limited, or the service's own trouble."""
    status = response.status_code
    if status == 429:
        return _Retry(
            "rate limited (HTTP 429)", True, _seconds(response.headers.get("retry-after"))
        )
    if status >= 500 or status == 408:
        return _Retry(f"HTTP {status}")
    return None


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _carries_failure(response: httpx.Response) -> bool:
    """Whether an error answer of a result URL is the request's own (typed) failure."""
    if "x-fal-error-type" in response.headers:
        return True
    body = _json(response)
    return isinstance(body, dict) and ("error_type" in body or isinstance(body.get("detail"), list))


def _rejection(method: str, path: str, response: httpx.Response) -> ProviderError:
    """The error for a 4xx answer to a request we made, carrying fal's own words."""
    body = _json(response)
    detail = error_text(body) if body is not None else response.text.strip()[:300] or None
    message = f"fal rejected {method} {path} (HTTP {response.status_code})"
    if detail:
        message += f": {detail}"
    if is_refusal(body):
        return ProviderRefusedError(message)
    return ProviderRejectedError(message, status_code=response.status_code, detail=detail)


def _redact(url: str) -> str:
    """A URL fit for logs and messages: no query (signatures) and no data URI payload."""
    if url.startswith("data:"):
        return url.split(",", 1)[0] + ",..."
    return url.split("?", 1)[0]


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


class FalClient:
    """An async client for fal's queue API over one ``httpx.AsyncClient``.

    ``transport`` lets tests answer with ``httpx.MockTransport``; ``sleep`` and ``jitter`` let
    them retry without waiting. The key is sent only to the queue's own origin (output files
    live elsewhere) and is never logged, not even in ``repr``.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_QUEUE_URL,
        key: str | None = None,
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
        self._key = key
        self._origin = httpx.URL(self.base_url)
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            transport=transport,
            timeout=timeout,
            headers={"User-Agent": USER_AGENT},
            follow_redirects=True,  # output files may redirect; httpx drops auth off-origin
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **options: Any) -> FalClient:
        """A client from ``FAL_KEY`` and ``STORYREEL_FAL_QUEUE_URL`` (the simulator's, say)."""
        env = os.environ if environ is None else environ
        return cls(
            env.get("STORYREEL_FAL_QUEUE_URL") or DEFAULT_QUEUE_URL,
            env.get("FAL_KEY") or None,
            **options,
        )

    def __repr__(self) -> str:
        key = "set" if self._key else "unset"
        return f"FalClient(base_url={self.base_url!r}, key={key})"

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> FalClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    # -- the queue ---------------------------------------------------------------------------

    async def submit(
        self, model: str, input: dict[str, Any], *, webhook: str | None = None
    ) -> Submission:
        """Queue a request of ``model`` with ``input`` as the body; with ``webhook`` fal POSTs
        the outcome there (signed: see ``storyreel.webhooks.fal``)."""
        path = f"/{model_path(model)}"
        params = {"fal_webhook": webhook} if webhook else None

        def handle(response: httpx.Response) -> Submission | _Retry:
            if (retry := _should_retry(response)) is not None:
                return retry
            if response.is_error:
                raise _rejection("POST", path, response)
            return _parsed(Submission, response)

        return await self._request("POST", path, handle, json=input, params=params)

    async def status(self, model: str, request_id: str, *, logs: bool = False) -> QueueStatus:
        path = f"{self._request_path(model, request_id)}/status"

        def handle(response: httpx.Response) -> QueueStatus | _Retry:
            if (retry := _should_retry(response)) is not None:
                return retry
            if response.status_code == 404:
                # An id resumed from a heartbeat that fal no longer knows: make a new one.
                raise PredictionFailedError(f"fal request {request_id} not found")
            if response.is_error:
                raise _rejection("GET", path, response)
            return _parsed(QueueStatus, response)

        return await self._request("GET", path, handle, params={"logs": "1"} if logs else None)

    async def result(self, model: str, request_id: str) -> dict[str, Any]:
        """The output of a COMPLETED request; its failure raised as what it means."""
        path = self._request_path(model, request_id)

        def handle(response: httpx.Response) -> dict[str, Any] | _Retry:
            status = response.status_code
            if status in (401, 403):
                raise _rejection("GET", path, response)
            if (retry := _should_retry(response)) is not None and (
                status == 429 or not _carries_failure(response)
            ):
                return retry
            body = _json(response)
            if response.is_success:
                if isinstance(body, dict) and body.get("status") == "COMPLETED":
                    body = body.get("response", body)  # the older documented envelope
                if isinstance(body, dict):
                    return body
                return _Retry("malformed result (not a JSON object)")
            words = error_text(body) or response.reason_phrase or "no details"
            if is_refusal(body):
                raise ProviderRefusedError(f"fal refused the content: {words}")
            if status == 404:
                raise PredictionFailedError(f"fal request {request_id} not found")
            raise PredictionFailedError(f"fal request {request_id} failed (HTTP {status}): {words}")

        return await self._request("GET", path, handle)

    async def cancel(self, model: str, request_id: str) -> str:
        """Ask fal to drop a request; returns fal's word (``CANCELLATION_REQUESTED``, or
        ``ALREADY_COMPLETED`` when it had ended)."""
        path = f"{self._request_path(model, request_id)}/cancel"

        def handle(response: httpx.Response) -> str | _Retry:
            if (retry := _should_retry(response)) is not None:
                return retry
            body = _json(response)
            word = body.get("status") if isinstance(body, dict) else None
            if response.is_success or (response.status_code == 400 and isinstance(word, str)):
                return word if isinstance(word, str) else "CANCELLATION_REQUESTED"
            raise _rejection("PUT", path, response)

        return await self._request("PUT", path, handle)

    async def follow(
        self, model: str, request_id: str, on_poll: Callable[[QueueStatus], None] | None = None
    ) -> QueueStatus:
        """Poll (with logs, for progress) every ``poll_interval`` until COMPLETED.

        ``on_poll`` sees every earlier state. A completion that says it failed raises.
        """
        while True:
            status = await self.status(model, request_id, logs=True)
            if status.done:
                status.raise_for_failure(request_id)
                return status
            if on_poll is not None:
                on_poll(status)
            await self.sleep(self.poll_interval)

    # -- files -------------------------------------------------------------------------------

    async def download(
        self, url: str, dest: Path, on_chunk: Callable[[int], None] | None = None
    ) -> int:
        """Stream an output file (URL or data URI) into ``dest``; return the bytes written.

        The body goes to disk chunk by chunk, into a ``.part`` file renamed into place only
        when complete.
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
            if (retry := _should_retry(response)) is not None:
                return retry
            if response.status_code in (404, 410):
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

    # -- plumbing ----------------------------------------------------------------------------

    def _request_path(self, model: str, request_id: str) -> str:
        return f"/{app_id(model)}/requests/{quote(request_id, safe='')}"

    async def _request(
        self,
        method: str,
        path: str,
        handle: Callable[[httpx.Response], T | _Retry],
        *,
        json: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> T:
        async def once() -> T | _Retry:
            response = await self._http.request(
                method, path, json=json, params=params, headers=self._auth(path)
            )
            return handle(response)

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
                message = f"fal {what}: {outcome.reason}, {tries} times; gave up"
                if outcome.rate_limited:
                    raise ProviderThrottledError(message)
                raise ProviderError(message)
            logger.warning(
                "fal %s: %s; retry %d/%d in %.2fs", what, outcome.reason, tries, budget, delay
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
        if self._key and same_origin:
            return {"Authorization": f"Key {self._key}"}
        return {}


M = TypeVar("M", bound=BaseModel)


def _parsed(model: type[M], response: httpx.Response) -> M | _Retry:
    try:
        return model.model_validate_json(response.content)
    except ValidationError as error:
        return _Retry(f"malformed {model.__name__} ({error.error_count()} problems)")
