"""fal's queue protocol on the simulator, backed by the engine's predictions.

    POST /fal/{model id}[?fal_webhook=URL]        queue a request (the body is the model input)
    GET  /fal/{app}/requests/{id}/status[?logs=1] IN_QUEUE / IN_PROGRESS / COMPLETED
    GET  /fal/{app}/requests/{id}                 the output, or the failure in fal's words
    PUT  /fal/{app}/requests/{id}/cancel          202 CANCELLATION_REQUESTED, 400 ALREADY_COMPLETED
    GET  /fal/.well-known/jwks.json               the key this simulator signs webhooks with
    GET  /fal/openapi/queue/openapi.json?endpoint_id={model id}
                                                  the endpoint's OpenAPI document (fal serves
                                                  it at fal.ai/api/openapi/queue/openapi.json)

``{app}`` is the model id without its endpoint path (``fal-ai/kling-video`` for
``fal-ai/kling-video/v2/master/text-to-video``), as on fal. Point ``FalClient`` at
``http://host:port/fal`` and ``FalWebhookVerifier`` at ``http://host:port/fal/.well-known/
jwks.json``. The engine's knobs apply: latency, the outcome rates and prompt triggers
(``[refuse]``, ``[fail]``...), 5xx and malformed answers, the create rate limit. A finished
request with a ``fal_webhook`` is POSTed there, signed with an ED25519 key made at start, and
retried a few times when the receiver fails; cancelled requests are not delivered.

An endpoint with a stored schema (``schemas/fal/``) is held to it on submit, as fal's pydantic
apps are: a missing field, a wrong type, a value outside the enum or range is a 422 with
``{"detail": [{"loc": ["body", field], "msg", "type", ...}]}``; keys it does not take are
ignored (and logged). Any other endpoint accepts any JSON object.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from activities.simulator import schemas
from activities.simulator.engine import Simulator, simulator_of
from activities.simulator.prediction import Counts, Fate, Prediction, iso, version_of
from activities.simulator.webhooks import Sender
from storyreel.webhooks.fal import signed_message

logger = logging.getLogger(__name__)

USER_ID = "storyreel-simulator"
REFUSAL_MESSAGE = "The content was flagged by a content checker."
_REASONS = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


def _app(model: str) -> str:
    parts = model.split("/")
    return "/".join(parts[: 3 if parts[0] in ("workflows", "comfy") else 2])


def _urls(request: Request, prediction: Prediction) -> dict[str, str]:
    base = f"{request.base_url}fal/{_app(prediction.model)}/requests/{prediction.id}"
    return {"response_url": base, "status_url": f"{base}/status", "cancel_url": f"{base}/cancel"}


def _detail(status: int, detail: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status, headers=headers)


def outcome(prediction: Prediction) -> tuple[int, dict[str, Any], dict[str, str]]:
    """What the result URL answers for a prediction: status, body and headers."""
    if prediction.status == "succeeded" and prediction.output is not None:
        path = prediction.path
        file = {
            "url": prediction.output,
            "file_name": prediction.output.rsplit("/", 1)[-1],
            "file_size": path.stat().st_size if path is not None and path.exists() else None,
        }
        seed = prediction.input.get("seed")
        if prediction.is_image:
            return 200, {"images": [{**file, "content_type": "image/png"}], "seed": seed}, {}
        return 200, {"video": {**file, "content_type": "video/mp4"}, "seed": seed}, {}
    if not prediction.terminal:
        return 400, {"detail": "Request is still in progress."}, {}
    if prediction.fate is Fate.refuse and prediction.status == "failed":
        problem = {
            "loc": ["body", "prompt"],
            "msg": REFUSAL_MESSAGE,
            "type": "content_policy_violation",
            "input": prediction.prompt,
            "categories": ["model_moderated"],
        }
        return 422, {"detail": [problem]}, {}
    if prediction.status == "failed":
        body = {
            "detail": prediction.error or "Request failed.",
            "error_type": "runner_disconnected",
        }
        return 503, body, {"X-Fal-Error-Type": "runner_disconnected"}
    return 400, {"detail": "Request was cancelled."}, {}


@dataclass(eq=False)
class Deliveries:
    """The webhook side: the signing key, its JWKS, and the deliveries under way."""

    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    kid: str = field(default_factory=lambda: f"sim-{int(time.time())}")
    attempts: int = 4
    backoff: float = 0.2
    sender: Sender = field(default_factory=Sender)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    delivered: int = 0
    failed: int = 0

    def jwks(self) -> dict[str, Any]:
        raw = self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        key = {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": self.kid, "alg": "EdDSA"}
        return {"keys": [{**key, "use": "sig"}]}

    def headers(self, request_id: str, body: bytes) -> dict[str, str]:
        timestamp = str(int(time.time()))
        signature = self.key.sign(signed_message(request_id, USER_ID, timestamp, body))
        return {
            "Content-Type": "application/json",
            "X-Fal-Webhook-Request-Id": request_id,
            "X-Fal-Webhook-User-Id": USER_ID,
            "X-Fal-Webhook-Timestamp": timestamp,
            "X-Fal-Webhook-Signature": signature.hex(),
        }

    def schedule(self, prediction: Prediction, url: str, counts: Counts) -> None:
        task = asyncio.create_task(
            self._deliver(prediction, url, counts), name=f"fal-hook-{prediction.id}"
        )
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _deliver(self, prediction: Prediction, url: str, counts: Counts) -> None:
        await prediction.done.wait()
        if prediction.status in ("canceled", "aborted"):
            return
        status, payload, _ = outcome(prediction)
        ok = status == 200
        body = json.dumps(
            {
                "request_id": prediction.id,
                "gateway_request_id": prediction.id,
                "status": "OK" if ok else "ERROR",
                "payload": payload,
                "error": None if ok else f"Invalid status code: {status}",
            }
        ).encode()
        failure = await self.sender.post(
            url,
            body,
            # Signed afresh each time: a retry hours later must not look like a replay.
            lambda: self.headers(prediction.id, body),
            tries=self.attempts,
            backoff=lambda attempt: self.backoff * 2**attempt,
            final_4xx=False,
        )
        if failure is None:
            self.delivered += 1
            counts.webhooks_sent += 1
        else:
            logger.warning("fal webhook for %s failed: %s", prediction.id, failure)
            self.failed += 1
            counts.webhooks_failed += 1

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.sender.close()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    deliveries = Deliveries()
    app.state.fal = deliveries
    try:
        yield
    finally:
        await deliveries.close()


router = APIRouter(prefix="/fal", tags=["fal"], lifespan=lifespan)


def _deliveries(request: Request) -> Deliveries:
    deliveries: Deliveries = request.app.state.fal
    return deliveries


def _gate(request: Request, sim: Simulator) -> Response | None:
    """fal's key check, then the simulator's injected 5xx; None lets the request through."""
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "key" or not key.strip():
        return _detail(401, "No or invalid credentials (expected 'Authorization: Key ...').")
    if (status := sim.roll_error()) is not None:
        sim.counts.server_errors += 1
        return _detail(status, f"{_REASONS[status]} (simulated upstream fault).")
    return None


def _answer(
    sim: Simulator, payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    body = json.dumps(payload).encode()
    if sim.roll_malformed():
        body = body[: max(1, len(body) // 2)]  # cut mid-object, like a dropped proxy connection
    return Response(body, status, headers, media_type="application/json")


def _request_of(request: Request, app: str, request_id: str) -> Prediction | Response:
    """The request ``request_id`` of ``app``, or the answer instead (a fault, 401 or 404)."""
    sim = simulator_of(request)
    if (refused := _gate(request, sim)) is not None:
        return refused
    prediction = sim.get(request_id)
    if prediction is None or _app(prediction.model) != app:
        return _detail(404, f"Request {request_id} not found.")
    return prediction


@router.get("/.well-known/jwks.json")
async def jwks(request: Request) -> dict[str, Any]:
    """The public key fal webhooks from this simulator are signed with."""
    return _deliveries(request).jwks()


def permissive_openapi(endpoint: str) -> dict[str, Any]:
    """The document served for an endpoint without a stored schema: any input is accepted."""
    name = "".join(part.capitalize() for part in endpoint.replace("-", "/").split("/")) + "Input"
    properties = {
        "prompt": {"title": "Prompt", "type": "string"},
        "image_url": {"title": "Image Url", "type": "string"},
        "duration": {"title": "Duration", "type": "string", "default": "5"},
        "aspect_ratio": {"title": "Aspect Ratio", "type": "string", "default": "16:9"},
        "seed": {"title": "Seed", "type": "integer"},
    }
    body = {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}}
    return {
        "openapi": "3.0.4",
        "info": {
            "title": f"Queue OpenAPI for {endpoint}",
            "version": "1.0.0",
            "description": "Simulated: this endpoint has no stored schema; any input is accepted.",
            "x-fal-metadata": {"endpointId": endpoint},
        },
        "components": {
            "schemas": {
                name: {"title": name, "type": "object", "properties": properties, "required": []}
            }
        },
        "paths": {f"/{endpoint}": {"post": {"requestBody": {"required": True, **body}}}},
    }


@router.get("/openapi/queue/openapi.json")
async def openapi(endpoint_id: str) -> dict[str, Any]:
    """An endpoint's OpenAPI document, as fal publishes it (public, no key needed)."""
    schema = schemas.find("fal", endpoint_id)
    return permissive_openapi(endpoint_id) if schema is None else schema.document


@router.get("/{app:path}/requests/{request_id}/status")
async def status(app: str, request_id: str, request: Request, logs: int = 0) -> Response:
    """Where a request stands; ``logs=1`` adds the model's log lines (tqdm progress)."""
    sim, prediction = simulator_of(request), _request_of(request, app, request_id)
    if isinstance(prediction, Response):
        return prediction
    prediction.gets += 1  # provider reads, counted as for Replicate's GETs
    sim.counts.gets += 1
    body: dict[str, Any] = {"request_id": prediction.id, **_urls(request, prediction)}
    if prediction.status == "starting":
        body |= {"status": "IN_QUEUE", "queue_position": 0}
    elif not prediction.terminal:
        body["status"] = "IN_PROGRESS"
    else:
        body["status"] = "COMPLETED"
        if prediction.started_at is not None and prediction.completed_at is not None:
            took = (prediction.completed_at - prediction.started_at).total_seconds()
            body["metrics"] = {"inference_time": took}
    if logs:
        stamp = iso(prediction.started_at or prediction.created_at)
        body["logs"] = [
            {"message": line, "level": "INFO", "source": "user", "timestamp": stamp}
            for line in prediction.logs
        ]
    return _answer(sim, body)


@router.get("/{app:path}/requests/{request_id}")
async def result(app: str, request_id: str, request: Request) -> Response:
    """The output of a completed request, or its failure as fal answers it."""
    sim, prediction = simulator_of(request), _request_of(request, app, request_id)
    if isinstance(prediction, Response):
        return prediction
    prediction.gets += 1
    sim.counts.gets += 1
    code, body, headers = outcome(prediction)
    return _answer(sim, body, code, headers)


@router.put("/{app:path}/requests/{request_id}/cancel")
async def cancel(app: str, request_id: str, request: Request) -> Response:
    """Cancel a request that has not ended (its render stops)."""
    sim, prediction = simulator_of(request), _request_of(request, app, request_id)
    if isinstance(prediction, Response):
        return prediction
    if prediction.terminal:
        return JSONResponse({"status": "ALREADY_COMPLETED"}, 400)
    sim.cancel(prediction.id)
    return JSONResponse({"status": "CANCELLATION_REQUESTED"}, 202)


@router.post("/{model:path}")
async def submit(model: str, request: Request, fal_webhook: str | None = None) -> Response:
    """Queue a request of ``model``; the JSON body is the model's input."""
    sim = simulator_of(request)
    if (refused := _gate(request, sim)) is not None:
        return refused
    try:
        inputs = json.loads(await request.body())
    except ValueError:
        inputs = None
    if not isinstance(inputs, dict):
        problem = {"loc": ["body"], "msg": "Input should be a JSON object", "type": "dict_type"}
        return _detail(422, [problem])
    if len(model.split("/")) < 2:
        return _detail(404, f"Application {model!r} not found.")
    schema = schemas.find("fal", model)
    if schema is not None and (invalid := schema.fal_errors(inputs)):
        return _detail(422, invalid)
    admission = sim.admit_create()
    if not admission.allowed:
        retry = admission.headers["Retry-After"]
        return _detail(429, f"Rate limited; retry in {retry} second(s).", admission.headers)
    base_url = str(request.base_url)
    prediction = sim.create(
        model, version_of(model), inputs, base_url, protocol="fal", schema=schema
    )
    if fal_webhook:
        _deliveries(request).schedule(prediction, fal_webhook, sim.counts)
    body = {"request_id": prediction.id, **_urls(request, prediction), "queue_position": 0}
    return JSONResponse(body, 200, headers=admission.headers)
