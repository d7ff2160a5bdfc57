"""A small async client for Runware's REST task API (https://runware.ai/docs).

Every request is ``POST {base}`` with a JSON array of tasks; the key travels as
``Authorization: Bearer`` (the documented alternative to an ``authentication`` task). Video
tasks run with ``deliveryMethod: "async"``: the POST only acknowledges the task, and a
``getResponse`` task with the same ``taskUUID`` reads where it stands. Answers carry a ``data``
array (generations ``processing`` or ``success``) and an ``errors`` array (``code``,
``message``, ``taskUUID``, ...).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from enum import StrEnum, auto
from typing import Any, TypeVar, Unpack

import httpx
from pydantic import ValidationError

from activities.providers.http_base import Answer, HTTPOptions, Retry, RetryingHTTP, retry_for
from activities.providers.replicate_api import is_refusal
from storyreel.contracts import PredictionPhase, PredictionUpdate
from storyreel.errors import (
    PredictionFailedError,
    ProviderError,
    ProviderRefusedError,
    ProviderRejectedError,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_BASE_URL = "https://api.runware.ai/v1"
# Error codes and words that mean "this key may not do this": retrying cannot help.
_AUTH_CODES = ("invalidapikey", "unauthorized", "forbidden", "apikey")
# How an unknown (never submitted, or expired) task UUID may be worded. Runware's docs do not
# show this answer; any of these words in the code or message reads as "no such task".
_UNKNOWN_MARKERS = ("notfound", "not found", "unknown", "does not exist", "doesn't exist")
# Runware's docs do not say what a repeated taskUUID does; if it answers with an error, these
# words in it mean the task already exists (and can be followed) rather than a bad request.
_DUPLICATE_MARKERS = ("duplicate", "already exists", "alreadyexists", "already in use")


class TaskStatus(StrEnum):
    processing = auto()
    success = auto()
    error = auto()
    unknown = auto()
    """Runware does not know the task (never submitted, or forgotten)."""


class RunwareError(Answer):
    """One entry of an ``errors`` array."""

    code: str = ""
    message: str = ""
    parameter: Any = None
    taskType: str | None = None
    taskUUID: str | None = None

    @property
    def text(self) -> str:
        return f"{self.code}: {self.message}".strip(": ") or "unspecified error"

    def mentions(self, markers: tuple[str, ...]) -> bool:
        lowered = f"{self.code} {self.message}".lower()
        return any(marker in lowered for marker in markers)


class RunwareTask(Answer):
    """Where one video task stands, read from a ``getResponse`` answer."""

    taskUUID: str
    status: TaskStatus
    progress: float | None = None
    videoURL: str | None = None
    videoUUID: str | None = None
    cost: float | None = None
    seed: int | None = None
    error: str | None = None
    refused: bool = False
    reported: bool = True
    """False while Runware reports nothing for the task (acknowledged, not yet listed)."""

    @property
    def done(self) -> bool:
        return self.status is not TaskStatus.processing

    def update(self) -> PredictionUpdate:
        phase = {
            TaskStatus.processing: PredictionPhase.running,
            TaskStatus.success: PredictionPhase.succeeded,
        }.get(self.status, PredictionPhase.failed)
        if not self.reported:
            phase = PredictionPhase.queued
        if self.refused:
            phase = PredictionPhase.refused
        progress = None if self.progress is None else max(0.0, min(100.0, self.progress))
        error = self.error[:2000] if self.error else None
        return PredictionUpdate(
            prediction_id=self.taskUUID, phase=phase, progress=progress, error=error
        )

    def raise_for_failure(self) -> None:
        """Raise what a task that ended without a video means for its caller."""
        if self.status is TaskStatus.processing:
            return
        if self.refused:
            raise ProviderRefusedError(f"Runware refused the content: {self.error}")
        if self.status is TaskStatus.unknown:
            raise PredictionFailedError(f"Runware task {self.taskUUID} not found")
        if self.status is TaskStatus.error:
            raise PredictionFailedError(f"Runware task {self.taskUUID} failed: {self.error}")
        if not self.videoURL:
            raise PredictionFailedError(f"Runware task {self.taskUUID} succeeded without a video")


class _Envelope(Answer):
    """The body of every answer: a ``data`` array and/or an ``errors`` array."""

    data: list[dict[str, Any]] | None = None
    errors: list[RunwareError] | None = None


class RunwareClient(RetryingHTTP):
    """An async client for Runware's task API over one ``httpx.AsyncClient``.

    ``transport`` lets tests answer with ``httpx.MockTransport``; ``sleep`` and ``jitter`` let
    them retry without waiting. The key goes only to the API's origin and never into logs,
    messages or ``repr``.
    """

    provider = "Runware"

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str = DEFAULT_BASE_URL,
        *,
        poll_interval: float = 5.0,
        **options: Unpack[HTTPOptions],
    ) -> None:
        super().__init__(base_url, key=api_key, poll_interval=poll_interval, **options)

    async def submit(self, task: dict[str, Any]) -> bool:
        """Send one task; True when Runware took it, False when it already had that taskUUID."""
        uuid = str(task.get("taskUUID"))

        def accepted(status: int, envelope: _Envelope) -> bool:
            for error in envelope.errors or []:
                if error.mentions(_DUPLICATE_MARKERS):
                    logger.info("Runware already has task %s: following it", uuid)
                    return False
                raise _rejection(error, status)
            return True

        return await self._send(task, f"{task.get('taskType')} {uuid}", accepted)

    async def get_response(self, task_uuid: str) -> RunwareTask:
        """One ``getResponse`` read of a task (exactly one request unless it must be retried)."""

        def read(status: int, envelope: _Envelope) -> RunwareTask | Retry:
            for error in envelope.errors or []:
                if error.taskUUID not in (None, task_uuid):
                    continue
                if status == 404 or error.mentions(_UNKNOWN_MARKERS):
                    return RunwareTask(
                        taskUUID=task_uuid, status=TaskStatus.unknown, error=error.text
                    )
                return RunwareTask(
                    taskUUID=task_uuid,
                    status=TaskStatus.error,
                    error=error.text,
                    refused=is_refusal(error.text),
                )
            items = [i for i in envelope.data or [] if i.get("taskUUID") in (None, task_uuid)]
            if not items:
                # Acknowledged but not listed yet: still on its way.
                return RunwareTask(taskUUID=task_uuid, status=TaskStatus.processing, reported=False)
            item = next((i for i in items if i.get("status") == "success"), items[0])
            try:
                return RunwareTask.model_validate({**item, "taskUUID": task_uuid})
            except ValidationError as error:
                return Retry(f"malformed generation ({error.error_count()} problems)")

        task = {"taskType": "getResponse", "taskUUID": task_uuid}
        return await self._send(task, f"getResponse {task_uuid}", read)

    async def _send(
        self,
        task: dict[str, Any],
        what: str,
        read: Callable[[int, _Envelope], T | Retry],
    ) -> T:
        async def once() -> T | Retry:
            response = await self._http.post(
                self.base_url, json=[task], headers=self._auth(self.base_url)
            )
            retry = retry_for(response)
            if retry is not None:
                return retry
            try:
                envelope = _Envelope.model_validate_json(response.content)
            except ValidationError as invalid:
                if response.is_error:
                    raise _http_rejection(response) from invalid
                return Retry(f"malformed answer ({invalid.error_count()} problems)")
            if response.is_error and not envelope.errors:
                raise _http_rejection(response)
            if envelope.data is None and envelope.errors is None:
                return Retry("malformed answer (neither data nor errors)")
            for error in envelope.errors or []:
                if response.status_code in (401, 402, 403) or error.mentions(_AUTH_CODES):
                    raise _rejection(error, response.status_code)
            return read(response.status_code, envelope)

        return await self._retrying(what, once)


def _rejection(error: RunwareError, status: int) -> ProviderError:
    message = f"Runware rejected the task (HTTP {status}): {error.text}"
    if is_refusal(error.text):
        return ProviderRefusedError(message)
    if status < 400:  # an errors array on a 2xx answer
        status = 401 if error.mentions(_AUTH_CODES) else 400
    return ProviderRejectedError(message, status_code=status, detail=error.message or None)


def _http_rejection(response: httpx.Response) -> ProviderRejectedError:
    return ProviderRejectedError(
        f"Runware rejected the request (HTTP {response.status_code})",
        status_code=response.status_code,
    )
