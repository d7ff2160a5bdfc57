"""A small async client for fal's queue API (``queue.fal.run``), and the shapes it answers.

Only what storyreel needs: submit, status, result, cancel, and streaming an output file to
disk. A model id may name an endpoint below its app (``fal-ai/kling-video/v2/master/
text-to-video``): fal wants the whole id on submit but only the app (``fal-ai/kling-video``) in
the status, result and cancel URLs. Transient trouble (429, 5xx, transport errors, malformed
bodies) is retried with backoff by ``RetryingHTTP`` (``http_base``), which also downloads; what
retrying cannot fix is raised as a typed error.
A failed request answers its result URL with an error status: a model error (``detail`` list,
e.g. ``content_policy_violation``) or a request error (``error_type``); those are the request's
outcome, never retried, while a bare 5xx is the service's own trouble and is.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import StrEnum
from typing import Any, Unpack
from urllib.parse import quote

import httpx
from pydantic import Field

from activities.providers.http_base import Answer, HTTPOptions, Retry, RetryingHTTP, parsed, redact
from activities.providers.replicate_api import tqdm_percent
from storyreel.contracts import ClipStatus, PredictionPhase, PredictionUpdate
from storyreel.errors import (
    BadInputError,
    PredictionFailedError,
    ProviderError,
    ProviderRefusedError,
    ProviderRejectedError,
)
from storyreel.webhooks.fal import error_text, is_refusal

__all__ = ["FalClient", "QueueState", "QueueStatus", "Submission", "app_id"]

DEFAULT_QUEUE_URL = "https://queue.fal.run"
# Where fal publishes each endpoint's OpenAPI document (``?endpoint_id=fal-ai/...``); public.
DEFAULT_SCHEMA_URL = "https://fal.ai/api/openapi/queue/openapi.json"
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


class RequestLog(Answer):
    message: str = ""
    level: str | None = None
    timestamp: str | None = None


class Submission(Answer):
    """What a submit answers; the URLs are fal's own, for reference only (we build ours)."""

    request_id: str = Field(min_length=1, max_length=300)
    response_url: str | None = None
    status_url: str | None = None
    cancel_url: str | None = None
    queue_position: int | None = None


class QueueStatus(Answer):
    """One status read; ``logs`` only when asked for, ``error`` only on a failed request."""

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


class FalClient(RetryingHTTP):
    """An async client for fal's queue API over one ``httpx.AsyncClient``.

    ``transport`` lets tests answer with ``httpx.MockTransport``; ``sleep`` and ``jitter`` let
    them retry without waiting (the options of ``HTTPOptions``). The key is sent only to the
    queue's own origin (output files live elsewhere) and is never logged, not even in ``repr``.
    """

    provider = "fal"
    follow_api_redirects = True  # the key travels in Authorization
    key_scheme = "Key"

    def __init__(
        self,
        base_url: str = DEFAULT_QUEUE_URL,
        key: str | None = None,
        *,
        poll_interval: float = 2.0,
        schema_url: str = DEFAULT_SCHEMA_URL,
        **options: Unpack[HTTPOptions],
    ) -> None:
        super().__init__(base_url, key=key, poll_interval=poll_interval, **options)
        self.schema_url = schema_url

    def _download_rejection(self, url: str, response: httpx.Response) -> ProviderError:
        return _rejection("GET", redact(url), response)

    # -- the queue ---------------------------------------------------------------------------

    async def submit(
        self, model: str, input: dict[str, Any], *, webhook: str | None = None
    ) -> Submission:
        """Queue a request of ``model`` with ``input`` as the body; with ``webhook`` fal POSTs
        the outcome there (signed: see ``storyreel.webhooks.fal``)."""
        path = f"/{model_path(model)}"
        params = {"fal_webhook": webhook} if webhook else None

        def handle(response: httpx.Response) -> Submission | Retry:
            if (retry := self._retry_for(response)) is not None:
                return retry
            if response.is_error:
                raise _rejection("POST", path, response)
            return parsed(Submission, response)

        return await self._request("POST", path, handle, json=input, params=params)

    async def endpoint_schema(self, model: str) -> dict[str, Any]:
        """The endpoint's published OpenAPI document: what its requests take."""
        endpoint = model_path(model)

        def handle(response: httpx.Response) -> dict[str, Any] | Retry:
            if (retry := self._retry_for(response)) is not None:
                return retry
            if response.is_error:
                raise _rejection("GET", self.schema_url, response)
            body = _json(response)
            if not isinstance(body, dict):
                return Retry("malformed OpenAPI document (not a JSON object)")
            return body

        return await self._request("GET", self.schema_url, handle, params={"endpoint_id": endpoint})

    async def status(self, model: str, request_id: str, *, logs: bool = False) -> QueueStatus:
        path = f"{self._request_path(model, request_id)}/status"

        def handle(response: httpx.Response) -> QueueStatus | Retry:
            if (retry := self._retry_for(response)) is not None:
                return retry
            if response.status_code == 404:
                # An id resumed from a heartbeat that fal no longer knows: make a new one.
                raise PredictionFailedError(f"fal request {request_id} not found")
            if response.is_error:
                raise _rejection("GET", path, response)
            return parsed(QueueStatus, response)

        return await self._request("GET", path, handle, params={"logs": "1"} if logs else None)

    async def result(self, model: str, request_id: str) -> dict[str, Any]:
        """The output of a COMPLETED request; its failure raised as what it means."""
        path = self._request_path(model, request_id)

        def handle(response: httpx.Response) -> dict[str, Any] | Retry:
            status = response.status_code
            if status in (401, 403):
                raise _rejection("GET", path, response)
            if (retry := self._retry_for(response)) is not None and (
                status == 429 or not _carries_failure(response)
            ):
                return retry
            body = _json(response)
            if response.is_success:
                if isinstance(body, dict) and body.get("status") == "COMPLETED":
                    body = body.get("response", body)  # the older documented envelope
                if isinstance(body, dict):
                    return body
                return Retry("malformed result (not a JSON object)")
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

        def handle(response: httpx.Response) -> str | Retry:
            if (retry := self._retry_for(response)) is not None:
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

    # -- plumbing ----------------------------------------------------------------------------

    def _request_path(self, model: str, request_id: str) -> str:
        return f"/{app_id(model)}/requests/{quote(request_id, safe='')}"
