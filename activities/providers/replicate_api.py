"""A small async client for Replicate's predictions HTTP API, and the prediction it returns.

Only what storyreel needs: create, get, cancel, follow a prediction to its end, and stream its
output to a file. Transient trouble (429, 5xx, transport errors, malformed bodies) is retried
with backoff by ``RetryingHTTP`` (``http_base``), which also downloads; what retrying cannot fix
is raised as a typed, non-retryable error so the clip activity fails fast instead of burning
its retry policy.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum, auto
from typing import Any, Unpack
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict

from activities.providers.http_base import (
    Answer,
    HTTPOptions,
    Retry,
    RetryingHTTP,
    parsed,
    redact,
    retry_for,
    seconds,
)
from storyreel.contracts import ClipStatus, PredictionPhase, PredictionUpdate
from storyreel.errors import (
    BadInputError,
    PredictionFailedError,
    ProviderError,
    ProviderRefusedError,
    ProviderRejectedError,
)
from storyreel.webhooks.replicate import is_refusal, tqdm_percent

__all__ = [
    "Prediction",
    "ProviderRejectedError",
    "ReplicateClient",
    "is_refusal",
    "tqdm_percent",
]

DEFAULT_BASE_URL = "https://api.replicate.com"

_VERSION_ID = re.compile(r"[0-9a-f]{64}")
_MODEL_NAME = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")


class PredictionStatus(StrEnum):
    starting = auto()
    processing = auto()
    succeeded = auto()
    failed = auto()
    canceled = auto()
    aborted = auto()


class Metrics(BaseModel):
    model_config = ConfigDict(extra="allow")

    predict_time: float | None = None
    total_time: float | None = None


class Prediction(Answer):
    """A prediction as Replicate describes it; unknown fields are ignored."""

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
            seconds(reset),
        )


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


class ReplicateClient(RetryingHTTP):
    """An async client for Replicate's predictions API over one ``httpx.AsyncClient``.

    ``transport`` lets tests answer with ``httpx.MockTransport``; ``sleep`` and ``jitter`` let
    them retry without waiting (the options of ``HTTPOptions``). The token is sent only to the
    API's own origin and is never logged, not even in ``repr``. ``rate_limit`` is what the
    last answer said about the rate limit.
    """

    provider = "Replicate"
    follow_api_redirects = True  # the token travels in Authorization

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        api_token: str | None = None,
        *,
        poll_interval: float = 2.0,
        **options: Unpack[HTTPOptions],
    ) -> None:
        super().__init__(base_url, key=api_token, poll_interval=poll_interval, **options)
        self.rate_limit: RateLimit | None = None

    def _retry_for(self, response: httpx.Response) -> Retry | None:
        self.rate_limit = RateLimit.from_headers(response.headers) or self.rate_limit
        return retry_for(response, "ratelimit-reset")

    def _download_rejection(self, url: str, response: httpx.Response) -> ProviderError:
        return _rejection("GET", redact(url), response)

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

    async def model_schema(self, model: str) -> dict[str, Any]:
        """The model's record with its latest version's OpenAPI schema (``GET /v1/models/
        {owner}/{name}``): what inputs it takes."""
        owner, _, name = model.partition(":")[0].partition("/")
        if not owner or not name:
            raise BadInputError(f"Replicate model {model!r} is not owner/name")
        path = f"/v1/models/{quote(owner, safe='')}/{quote(name, safe='')}"

        def handle(response: httpx.Response) -> dict[str, Any] | Retry:
            if (retry := self._retry_for(response)) is not None:
                return retry
            if response.is_error:
                raise _rejection("GET", path, response)
            try:
                document = response.json()
            except ValueError:
                return Retry("malformed model record")
            if not isinstance(document, dict):
                raise ProviderError(f"GET {path}: the model record is not an object")
            return document

        return await self._request("GET", path, handle)

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

    async def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Prediction:
        def handle(response: httpx.Response) -> Prediction | Retry:
            retry = self._retry_for(response)
            if retry is not None:
                return retry
            if response.is_error:
                raise _rejection(method, path, response)
            return parsed(Prediction, response, "prediction")

        return await self._request(method, path, handle, json=body, headers=headers)


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
