"""A small async client for Veo through the Gemini API's long-running operations.

``POST /v1beta/models/{model}:predictLongRunning`` starts a generation and answers with an
operation (``{"name": "models/.../operations/..."}``); ``GET /v1beta/{name}`` reads it until
``done``; the video is at ``response.generateVideoResponse.generatedSamples[].video.uri`` and
is downloaded with the same key header. The key travels as ``x-goog-api-key`` (never in a
URL) and only to the API's own origin: downloads follow redirects by hand for that reason.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Unpack

import httpx
from pydantic import ValidationError

from activities.providers.http_base import Answer, HTTPOptions, Retry, RetryingHTTP, retry_for
from activities.providers.replicate_api import is_refusal
from storyreel.contracts import PredictionPhase, PredictionUpdate
from storyreel.errors import (
    BadInputError,
    PredictionFailedError,
    ProviderError,
    ProviderRefusedError,
    ProviderRejectedError,
)

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
API_VERSION = "v1beta"
_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_OPERATION = re.compile(r"(models/[A-Za-z0-9._-]+/)?operations/[A-Za-z0-9._-]+")
# Google's words for a Responsible-AI block, besides the generic ones ``is_refusal`` knows.
_RAI_MARKERS = ("responsible ai", "usage guidelines", "raimediafiltered", "prohibited")


def is_rai_refusal(message: str) -> bool:
    lowered = message.lower()
    return is_refusal(message) or any(marker in lowered for marker in _RAI_MARKERS)


class OperationError(Answer):
    """A ``google.rpc.Status``."""

    code: int | None = None
    message: str = ""
    status: str | None = None


class Operation(Answer):
    """A ``google.longrunning.Operation`` as the Gemini API returns it for Veo."""

    name: str
    done: bool = False
    metadata: dict[str, Any] | None = None
    response: dict[str, Any] | None = None
    error: OperationError | None = None

    @property
    def _video_response(self) -> dict[str, Any]:
        response = self.response or {}
        inner = response.get("generateVideoResponse", response)
        return inner if isinstance(inner, dict) else {}

    @property
    def video_uris(self) -> list[str]:
        samples = self._video_response.get("generatedSamples") or []
        uris = []
        for sample in samples if isinstance(samples, list) else []:
            video = sample.get("video") if isinstance(sample, dict) else None
            uri = video.get("uri") if isinstance(video, dict) else None
            if isinstance(uri, str) and uri.startswith(("https://", "http://")):
                uris.append(uri)
        return uris

    @property
    def filtered(self) -> str | None:
        """Why Responsible-AI filtering held the videos back, if it did."""
        inner = self._video_response
        reasons = inner.get("raiMediaFilteredReasons") or []
        count = inner.get("raiMediaFilteredCount") or 0
        if not reasons and not count:
            return None
        words = "; ".join(str(reason) for reason in reasons) if isinstance(reasons, list) else ""
        return words or f"{count} video(s) filtered by Responsible AI"

    @property
    def progress(self) -> float | None:
        value = (self.metadata or {}).get("progressPercent")
        return float(min(100, max(0, value))) if isinstance(value, int | float) else None

    def update(self) -> PredictionUpdate:
        """This operation as one provider-neutral observation."""
        phase, error = PredictionPhase.running, None
        if self.done:
            try:
                self.raise_for_failure()
                phase = PredictionPhase.succeeded
            except ProviderRefusedError as refused:
                phase, error = PredictionPhase.refused, str(refused)
            except PredictionFailedError as failed:
                phase, error = PredictionPhase.failed, str(failed)
        return PredictionUpdate(
            prediction_id=self.name,
            phase=phase,
            progress=self.progress,
            error=error[:2000] if error else None,
        )

    def raise_for_failure(self) -> None:
        """Raise what an operation that ended without a video means for its caller."""
        if not self.done:
            return
        if self.error is not None:
            message = self.error.message or self.error.status or f"code {self.error.code}"
            if is_rai_refusal(message):
                raise ProviderRefusedError(f"Veo refused the content: {message}")
            raise PredictionFailedError(f"Veo operation {self.name} failed: {message}")
        if not self.video_uris:
            if (why := self.filtered) is not None:
                raise ProviderRefusedError(f"Veo refused the content: {why}")
            raise PredictionFailedError(f"Veo operation {self.name} ended without a video")


class VeoClient(RetryingHTTP):
    """An async client for Veo on the Gemini API over one ``httpx.AsyncClient``.

    ``transport`` lets tests answer with ``httpx.MockTransport``; ``sleep`` and ``jitter`` let
    them retry without waiting. The key is never logged, put in a URL or shown by ``repr``.
    """

    provider = "Veo"
    key_header = "x-goog-api-key"
    key_scheme = ""

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str = DEFAULT_BASE_URL,
        *,
        poll_interval: float = 10.0,
        **options: Unpack[HTTPOptions],
    ) -> None:
        super().__init__(base_url, key=api_key, poll_interval=poll_interval, **options)

    async def start(self, model: str, body: dict[str, Any]) -> Operation:
        """Start a generation of ``model`` (e.g. ``veo-3.1-generate-preview``)."""
        model = model.removeprefix("models/")
        if not _MODEL.fullmatch(model):
            raise BadInputError(f"Veo model {model!r} is not a model name")
        return await self._call("POST", f"models/{model}:predictLongRunning", body)

    async def get(self, name: str) -> Operation:
        try:
            return await self._call("GET", _operation_path(name))
        except ProviderRejectedError as error:
            if error.status_code != 404:
                raise
            # A name resumed from a heartbeat that the API no longer knows: make a new one.
            raise PredictionFailedError(f"Veo operation {name} not found") from error

    async def cancel(self, name: str) -> None:
        """Ask the API to stop an operation (``google.longrunning`` ``:cancel``)."""
        await self._call("POST", f"{_operation_path(name)}:cancel", {}, expect_operation=False)

    async def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        expect_operation: bool = True,
    ) -> Operation:
        url = f"{self.base_url}/{API_VERSION}/{path}"

        async def once() -> Operation | Retry:
            response = await self._http.request(method, url, json=body, headers=self._auth(url))
            retry = _retry_for(response)
            if retry is not None:
                return retry
            if response.is_error:
                raise _rejection(method, path, response)
            if not expect_operation:
                return Operation(name=path)
            try:
                return Operation.model_validate_json(response.content)
            except ValidationError as error:
                return Retry(f"malformed operation ({error.error_count()} problems)")

        return await self._retrying(f"{method} {path}", once)


def _operation_path(name: str) -> str:
    if not _OPERATION.fullmatch(name):
        # Names travel in heartbeats: never let one point the keyed request elsewhere.
        raise PredictionFailedError(f"{name!r} is not a Veo operation name")
    return name


def _google_error(response: httpx.Response) -> OperationError | None:
    try:
        body = response.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    try:
        return OperationError.model_validate(error) if isinstance(error, dict) else None
    except ValidationError:
        return None


def _retry_for(response: httpx.Response) -> Retry | None:
    retry = retry_for(response)
    if retry is None or not retry.rate_limited or retry.delay is not None:
        return retry
    # Google says how long to wait in a RetryInfo detail rather than a Retry-After header.
    try:
        details = response.json().get("error", {}).get("details", [])
        delays = [d["retryDelay"] for d in details if str(d.get("@type", "")).endswith("RetryInfo")]
        return Retry(retry.reason, rate_limited=True, delay=float(delays[0].rstrip("s")))
    except (ValueError, AttributeError, KeyError, IndexError, TypeError):
        return retry


def _rejection(method: str, path: str, response: httpx.Response) -> ProviderError:
    """The error for a 4xx answer, carrying Google's own words."""
    error = _google_error(response)
    detail = error.message if error else response.text.strip()[:300]
    message = f"Veo rejected {method} {path} (HTTP {response.status_code}"
    message += f" {error.status})" if error and error.status else ")"
    if detail:
        message += f": {detail}"
    if detail and is_rai_refusal(detail):
        return ProviderRefusedError(message)
    return ProviderRejectedError(message, status_code=response.status_code, detail=detail or None)
