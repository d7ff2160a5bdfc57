"""The simulator's HTTP face: Replicate's predictions API, its files, and the ``/_sim`` admin.

Answers are shaped like the recorded traffic in ``fixtures/replicate-cassettes``: prediction
objects, RFC 7807 problem documents (401/404/422/429/5xx), ``ratelimit-*`` headers, and sync
mode through ``Prefer: wait``. Faults are injected here, before a request does anything, so a
5xx on a create never leaves a prediction behind.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.exceptions import HTTPException

from activities.simulator import runware, schemas, veo
from activities.simulator.engine import Simulator, SimulatorConfig, simulator_of
from activities.simulator.fal import router as fal_queue
from activities.simulator.prediction import Prediction, version_of
from activities.simulator.webhooks import WEBHOOK_EVENTS

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "storyreel/sim-video"
PAGE_SIZE = 100
MAX_WAIT = 60
_PREFER_WAIT = re.compile(r"(?:^|[\s,;])wait(?:=(\d+))?(?:$|[\s,;])")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_REASONS = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


def problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    """An RFC 7807 problem document, the shape of every Replicate error answer."""
    body = {"title": title, "detail": detail, "status": status}
    headers = extra.pop("headers", None)
    return JSONResponse(
        {**body, **extra}, status, headers=headers, media_type="application/problem+json"
    )


class PredictionInput(BaseModel):
    """The inputs a model without a stored schema is checked against (``schemas/`` holds the
    real ones); any others are kept and echoed back."""

    model_config = ConfigDict(extra="allow")

    prompt: str = ""
    duration: int | float | None = None
    aspect_ratio: Literal["16:9", "9:16", "1:1"] | None = None
    seed: int | None = None


class ModelPredictionRequest(BaseModel):
    # webhook and webhook_events_filter are honoured; stream and the like are ignored.
    model_config = ConfigDict(extra="allow")

    # Checked once the model is known: against its stored schema, else ``PredictionInput``.
    input: dict[str, Any]


class VersionPredictionRequest(ModelPredictionRequest):
    version: str


def parse_prefer(header: str | None) -> float | None:
    """Seconds to hold a create open: ``wait`` is 60, ``wait=N`` is N (1-60)."""
    if header is None or (match := _PREFER_WAIT.search(f" {header} ")) is None:
        return None
    return float(min(MAX_WAIT, max(1, int(match[1])))) if match[1] else float(MAX_WAIT)


def parse_duration(text: str) -> float:
    """``Cancel-After`` durations as Replicate reads them: ``30s``, ``5m``, ``1h30m``, ``90``."""
    text = text.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    if not text or _DURATION.sub("", text):
        raise ValueError(f"cannot read {text!r} as a duration such as 30s or 5m")
    return sum(float(number) * _UNITS[unit] for number, unit in _DURATION.findall(text))


SimulatorDep = Annotated[Simulator, Depends(simulator_of)]


def answer(
    request: Request,
    simulator: Simulator,
    payload: Any,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    body = json.dumps(payload).encode()
    if request.method == "GET" and simulator.roll_malformed():
        # Cut mid-object, as a proxy that dropped the connection would hand it on.
        body = body[: max(1, len(body) // 2)]
    return Response(body, status, headers, media_type="application/json")


api = APIRouter(prefix="/v1")


async def _create(
    request: Request,
    simulator: Simulator,
    model: str,
    version: str,
    body: dict[str, Any],
    extra: dict[str, Any],
) -> Response:
    cancel_after = None
    if (header := request.headers.get("cancel-after")) is not None:
        try:
            cancel_after = parse_duration(header)
        except ValueError as error:
            return problem(422, "Invalid Cancel-After header", str(error))
    schema = schemas.find("replicate", model)
    inputs, invalid = _checked(schema, body)
    if invalid:
        detail = "".join(f"- {field['field']}: {field['description']}\n" for field in invalid)
        return problem(422, "Input validation failed", detail, invalid_fields=invalid)
    admission = simulator.admit_create()
    if not admission.allowed:
        retry = admission.headers["Retry-After"]
        detail = f"Request was throttled. Expected available in {retry} second(s)."
        return problem(429, "Request was throttled", detail, headers=admission.headers)
    base_url = str(request.base_url)
    webhook = extra.get("webhook")
    events = extra.get("webhook_events_filter")
    prediction = simulator.create(
        model,
        version,
        inputs,
        base_url,
        cancel_after,
        webhook=webhook if isinstance(webhook, str) and webhook else None,
        webhook_events=(
            frozenset(map(str, events)) & WEBHOOK_EVENTS
            if isinstance(events, list)
            else WEBHOOK_EVENTS
        ),
        schema=schema,
    )
    if simulator.config.create_delay:
        # The prediction already runs: its deliveries may reach the receiver before this answer.
        await asyncio.sleep(simulator.config.create_delay)
    headers = dict(admission.headers)
    waited_out = False
    if (wait := parse_prefer(request.headers.get("prefer"))) is not None:
        await simulator.wait(prediction, wait)
        headers["Preference-Applied"] = "wait"
        waited_out = not prediction.terminal
    return answer(request, simulator, prediction.to_json(waited_out), 201, headers)


def _checked(
    schema: schemas.ModelSchema | None, body: dict[str, Any]
) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """The input as the model will read it, and Replicate's ``invalid_fields`` (none: valid).

    A model with a stored schema is held to it (unknown keys pass, as on Replicate); any other
    model only to the few inputs the simulator reads (``PredictionInput``)."""
    if schema is not None:
        return body, schema.replicate_errors(body)
    try:
        return PredictionInput.model_validate(body).model_dump(exclude_unset=True), []
    except ValidationError as error:
        return body, [
            {
                "type": item["type"],
                "field": ".".join(map(str, ("input", *item["loc"]))),
                "description": item["msg"],
            }
            for item in error.errors()
        ]


def latest_version(model: str) -> str:
    """The version id a create by model name runs: the stored one when the page showed it."""
    schema = schemas.find("replicate", model)
    return (schema.version if schema is not None else None) or version_of(model)


@api.post("/models/{owner}/{name}/predictions", status_code=201)
async def create_by_model(
    owner: str, name: str, body: ModelPredictionRequest, request: Request, sim: SimulatorDep
) -> Response:
    """Start a prediction of a model's latest version (the official client's ``model=``)."""
    model = f"{owner}/{name}"
    version = latest_version(model)
    return await _create(request, sim, model, version, body.input, body.model_extra or {})


@api.post("/predictions", status_code=201)
async def create(body: VersionPredictionRequest, request: Request, sim: SimulatorDep) -> Response:
    """Start a prediction of a version: a bare id, ``owner/name`` or ``owner/name:id``."""
    reference, _, version = body.version.partition(":")
    if "/" in reference:
        model = reference
    else:
        model, version = sim.model_of(reference) or DEFAULT_MODEL, reference
    version = version or latest_version(model)
    return await _create(request, sim, model, version, body.input, body.model_extra or {})


@api.get("/predictions")
async def list_predictions(request: Request, sim: SimulatorDep, cursor: str = "0") -> Response:
    """Predictions newest first, a page at a time, linked by ``next``/``previous`` URLs."""
    offset = int(cursor) if cursor.isdigit() else 0
    everything = sim.newest_first()
    page = everything[offset : offset + PAGE_SIZE]
    link = f"{request.base_url}v1/predictions?cursor="
    payload = {
        "next": f"{link}{offset + PAGE_SIZE}" if offset + PAGE_SIZE < len(everything) else None,
        "previous": f"{link}{max(0, offset - PAGE_SIZE)}" if offset > 0 else None,
        "results": [prediction.to_json() for prediction in page],
    }
    return answer(request, sim, payload)


def _found(sim: Simulator, prediction_id: str) -> Prediction:
    prediction = sim.get(prediction_id)
    if prediction is None:
        raise HTTPException(404, f"No prediction with id {prediction_id}.")
    return prediction


@api.get("/predictions/{prediction_id}")
async def get_prediction(prediction_id: str, request: Request, sim: SimulatorDep) -> Response:
    """The prediction as it stands now."""
    prediction = _found(sim, prediction_id)
    prediction.gets += 1
    sim.counts.gets += 1
    return answer(request, sim, prediction.to_json())


@api.post("/predictions/{prediction_id}/cancel")
async def cancel_prediction(prediction_id: str, request: Request, sim: SimulatorDep) -> Response:
    """Cancel a prediction (stopping its render); an ended one is returned unchanged."""
    _found(sim, prediction_id)
    prediction = sim.cancel(prediction_id)
    assert prediction is not None
    return answer(request, sim, prediction.to_json())


VERSION_CREATED_AT = "2025-01-01T00:00:00.000000Z"


def permissive_openapi() -> dict[str, Any]:
    """The Cog schema served for a model without a stored one: the inputs the simulator reads,
    any others allowed."""
    string = {"type": "string"}
    properties = {
        "prompt": {**string, "title": "Prompt", "x-order": 0},
        "image": {**string, "title": "Image", "format": "uri", "x-order": 1},
        "duration": {"type": "number", "title": "Duration", "x-order": 2},
        "aspect_ratio": {"allOf": [{"$ref": "#/components/schemas/aspect_ratio"}], "x-order": 3},
        "seed": {"type": "integer", "title": "Seed", "x-order": 4},
    }
    aspect = {"enum": ["16:9", "9:16", "1:1"], "type": "string", "title": "aspect_ratio"}
    components = {
        "Input": {"type": "object", "title": "Input", "properties": properties},
        "Output": {"type": "string", "title": "Output", "format": "uri"},
        "aspect_ratio": {**aspect, "description": "An enumeration."},
    }
    info = {"title": "Cog", "version": "0.1.0"}
    return {"openapi": "3.0.2", "info": info, "paths": {}, "components": {"schemas": components}}


def version_record(model: str, version_id: str) -> dict[str, Any]:
    schema = schemas.find("replicate", model)
    stored = None if schema is None else schema.document["latest_version"]
    return {
        "id": version_id,
        "created_at": (stored or {}).get("created_at") or VERSION_CREATED_AT,
        "cog_version": (stored or {}).get("cog_version") or "0.13.0",
        "openapi_schema": permissive_openapi() if stored is None else stored["openapi_schema"],
    }


@api.get("/models/{owner}/{name}")
async def get_model(owner: str, name: str, request: Request, sim: SimulatorDep) -> Response:
    """The model object with ``latest_version.openapi_schema``: the stored one for the models
    in ``schemas/replicate/``, a permissive one for any other name."""
    model = f"{owner}/{name}"
    version = latest_version(model)
    sim.remember(model, version)
    schema = schemas.find("replicate", model)
    if schema is not None:
        payload = {**schema.document, "latest_version": version_record(model, version)}
    else:
        payload = {
            "url": f"https://replicate.com/{model}",
            "owner": owner,
            "name": name,
            "description": "A model the simulator knows no schema of: any input is accepted.",
            "visibility": "public",
            "github_url": None,
            "paper_url": None,
            "license_url": None,
            "run_count": 0,
            "cover_image_url": None,
            "default_example": None,
            "latest_version": version_record(model, version),
        }
    return answer(request, sim, payload)


@api.get("/models/{owner}/{name}/versions/{version_id}")
async def get_version(
    owner: str, name: str, version_id: str, request: Request, sim: SimulatorDep
) -> Response:
    """A version record, enough for ``client.run("owner/name:version")``."""
    sim.remember(f"{owner}/{name}", version_id)
    return answer(request, sim, version_record(f"{owner}/{name}", version_id))


@api.get("/webhooks/default/secret")
async def webhook_secret(request: Request, sim: SimulatorDep) -> Response:
    """The secret every delivery is signed with (Replicate's ``{"key": "whsec_…"}``)."""
    return answer(request, sim, {"key": sim.webhook_secret})


files = APIRouter()


@files.get("/files/{name}")
async def get_file(name: str, sim: SimulatorDep) -> FileResponse:
    """A prediction's output file (served without auth, like Replicate's delivery URLs)."""
    path = sim.output_file(name)
    if path is None or not path.is_file():
        raise HTTPException(404, f"No output file {name}.")
    return FileResponse(path, media_type="image/png" if path.suffix == ".png" else "video/mp4")


admin = APIRouter(prefix="/_sim")


@admin.get("/config")
async def get_config(sim: SimulatorDep) -> SimulatorConfig:
    """The knobs in force."""
    return sim.config


@admin.post("/config", response_model=None)
async def set_config(patch: dict[str, Any], sim: SimulatorDep) -> SimulatorConfig | JSONResponse:
    """Change some knobs; the others keep their values."""
    try:
        return sim.configure(patch)
    except ValidationError as error:
        return problem(422, "Invalid configuration", str(error))


@admin.get("/log")
async def get_log(sim: SimulatorDep) -> dict[str, Any]:
    """Every create (id, model, prompt, created_at, status, canceled) and the request counts."""
    return sim.log()


@admin.post("/reset")
async def reset(sim: SimulatorDep) -> dict[str, Any]:
    """Stop and forget every prediction; clear the log and the rate-limit window."""
    await sim.reset()
    return sim.log()


def _authorized(request: Request) -> bool:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and bool(token.strip())


async def _guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """Authentication and injected 5xx for the API; every 5xx answered is counted."""
    sim = simulator_of(request)
    if not request.url.path.startswith("/v1/"):
        return await call_next(request)
    if not _authorized(request):
        return problem(401, "Unauthenticated", "You did not pass a valid authentication token")
    if (status := sim.roll_error()) is not None:
        response: Response = problem(status, _REASONS[status], "Simulated upstream fault.")
    else:
        try:
            response = await call_next(request)
        except Exception:
            # Answered here rather than by Starlette so that it is counted like any other 5xx.
            logger.exception("simulator error on %s %s", request.method, request.url.path)
            response = problem(500, _REASONS[500], "The simulator failed; see its log.")
    if response.status_code >= 500:
        sim.counts.server_errors += 1
    return response


async def _invalid(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    fields = [
        {
            "type": item["type"],
            "field": ".".join(map(str, item["loc"][1:])),
            "description": item["msg"],
        }
        for item in error.errors()
    ]
    detail = "".join(f"- {field['field']}: {field['description']}\n" for field in fields)
    return problem(422, "Input validation failed", detail, invalid_fields=fields)


async def _http_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    title = "Not found" if error.status_code == 404 else "Request failed"
    return problem(error.status_code, title, str(error.detail), headers=error.headers)


def create_app(config: SimulatorConfig | None = None) -> FastAPI:
    """The simulator as an ASGI app; its predictions live as long as the app's lifespan."""
    simulator = Simulator(config or SimulatorConfig())

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await simulator.close()

    app = FastAPI(title="storyreel Replicate simulator", lifespan=lifespan)
    app.state.simulator = simulator
    for schema in schemas.stored("replicate").values():
        # Creates by a stored model's bare version id (``POST /v1/predictions``) resolve.
        simulator.remember(schema.model, schema.version or version_of(schema.model))
    app.middleware("http")(_guard)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(veo.GoogleError, veo.answer_google_error)
    for router in (api, files, admin, fal_queue, runware.router, veo.router):
        app.include_router(router)
    return app


def serve(
    config: SimulatorConfig | None = None,
    host: str = "127.0.0.1",
    port: int = 8090,
    *,
    log_level: str = "info",
) -> None:
    """Run the simulator until interrupted (blocking), e.g. for ``storyreel simulator``."""
    import uvicorn

    logger.info("Replicate simulator on http://%s:%d (knobs %s)", host, port, config)
    uvicorn.run(create_app(config), host=host, port=port, log_level=log_level, ws="none")
