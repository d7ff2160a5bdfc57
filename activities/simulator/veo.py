"""Veo on the Gemini API (long-running operations) on the simulator, backed by the engine.

    POST /veo/v1beta/models/{model}:predictLongRunning         start; answers {"name": ...}
    GET  /veo/v1beta/models/{model}/operations/{id}            the operation, ``done`` at the end
    POST /veo/v1beta/models/{model}/operations/{id}:cancel     stop it (``{}``)
    GET  /veo/v1beta/files/{id}:download?alt=media             the video (keyed, like Google's)
    GET  /veo/_sim/log                                         what each request carried

The record is also the prediction's ``request`` input, shown by the engine's ``GET /_sim/log``.

Point ``VeoClient`` at ``http://host:port/veo``. The key travels as ``x-goog-api-key`` (or
``?key=``): none is ``403 PERMISSION_DENIED``, one beginning with ``invalid`` is ``400
INVALID_ARGUMENT`` "API key not valid", both in Google's ``{"error": {code, message, status}}``
shape. The body is checked as the API checks it: only ``instances``/``parameters`` at the top
(else "Invalid JSON payload received. Unknown name"), one instance with a ``prompt`` or an
``image``; an image only as ``bytesBase64Encoded`` + ``mimeType`` (``inlineData``, ``uri``
and unknown fields "isn't supported by this model"); ``durationSeconds`` one the model makes
(the catalogue's entry, else Veo 2: 5-8, Veo 3/3.1: 4, 6, 8), an aspect ratio and resolution
the model has, 1080p/4k only with 8 s, and no ``generateAudio`` (Vertex-only). The operation
runs on the engine (latency, rates, triggers, 5xx, malformed reads, the rate limit as 429
RESOURCE_EXHAUSTED with a RetryInfo delay) and ends with
``response.generateVideoResponse.generatedSamples[0].video.uri``, or RAI-filtered, or an
``error``. Google documents no progress figure, so none is reported.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from activities.simulator.engine import Simulator, protocol_state, simulator_of
from activities.simulator.lengths import lengths_instead, made_lengths
from activities.simulator.prediction import Fate, Prediction, version_of
from activities.simulator.render import nearest_aspect, png_size
from storyreel.catalogue import ModelSpec, lookup

_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_STATUS = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
}
TOP_LEVEL = ("instances", "parameters")
INSTANCE_FIELDS = ("prompt", "image", "lastFrame", "referenceImages", "video")
IMAGE_FIELDS = ("bytesBase64Encoded", "mimeType")
IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp")
PARAMETERS = (
    "aspectRatio",
    "durationSeconds",
    "resolution",
    "negativePrompt",
    "personGeneration",
    "sampleCount",
    "numberOfVideos",
    "seed",
)
RESPONSE_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningResponse"
PERSON_GENERATION = ("allow_all", "allow_adult", "dont_allow")
# Clip lengths of the Veo generations, for models the catalogue does not list.
GENERATION_DURATIONS = {"veo-2": (5, 6, 7, 8), "veo-3": (4, 6, 8)}
RAI_REASON = (
    "Veo could not generate videos because the input violates Google's Responsible AI "
    "practices (simulated)."
)


class GoogleError(Exception):
    def __init__(
        self, code: int, message: str, details: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(message)
        self.code, self.message, self.details = code, message, details


@dataclass
class VeoState:
    records: dict[str, dict[str, Any]] = field(default_factory=dict)


router = APIRouter(prefix="/veo", tags=["veo"])


def _state(request: Request) -> VeoState:
    return protocol_state(request, "veo", VeoState)


def google_error(error: GoogleError, headers: dict[str, str] | None = None) -> Response:
    body: dict[str, Any] = {
        "code": error.code,
        "message": error.message,
        "status": _STATUS.get(error.code, "UNKNOWN"),
    }
    if error.details:
        body["details"] = error.details
    return JSONResponse({"error": body}, error.code, headers=headers)


async def _gate(request: Request) -> Simulator:
    """The key check, then the simulator's injected 5xx, before every Veo call: refused, the
    ``GoogleError`` is answered by ``answer_google_error``."""
    sim = simulator_of(request)
    key = request.headers.get("x-goog-api-key") or request.query_params.get("key")
    if not key or not key.strip():
        raise GoogleError(
            403,
            "Method doesn't allow unregistered callers (callers without established "
            "identity). Please use API Key or other form of API consumer identity to call "
            "this API.",
        )
    if key.lower().startswith("invalid"):
        reason = {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "API_KEY_INVALID",
            "domain": "googleapis.com",
        }
        raise GoogleError(400, "API key not valid. Please pass a valid API key.", [reason])
    if (status := sim.roll_error()) is not None:
        sim.counts.server_errors += 1
        raise GoogleError(status, "Internal error encountered (simulated).")
    return sim


Gated = Annotated[Simulator, Depends(_gate)]
"""The simulator, once the Veo call's key is accepted and no 5xx is injected."""


async def answer_google_error(_request: Request, error: Exception) -> Response:
    """The app's handler of a ``GoogleError`` a Veo route or its gate raised."""
    assert isinstance(error, GoogleError)
    return google_error(error)


def spec_of(model: str) -> ModelSpec | None:
    return lookup("veo", model)


def allowed_durations(model: str) -> list[float] | None:
    """The lengths ``model`` makes: its catalogue entry's, else its generation's (``veo-2``,
    ``veo-3``), else unknown."""
    made = (lengths for prefix, lengths in GENERATION_DURATIONS.items() if model.startswith(prefix))
    return made_lengths(spec_of(model), next(made, None))


def _unsupported(name: str) -> GoogleError:
    return GoogleError(400, f"`{name}` isn't supported by this model.")


def _image(value: object, where: str) -> tuple[str, bytes]:
    if not isinstance(value, dict):
        raise GoogleError(400, f"Invalid value at '{where}': an image object is expected.")
    for name in value:
        if name not in IMAGE_FIELDS:
            raise _unsupported(name)
    data, mime = value.get("bytesBase64Encoded"), value.get("mimeType")
    if not isinstance(data, str) or not data:
        raise GoogleError(400, f"`{where}.bytesBase64Encoded` is required.")
    if mime not in IMAGE_TYPES:
        raise GoogleError(400, f"`{where}.mimeType` must be one of {', '.join(IMAGE_TYPES)}.")
    try:
        return str(mime), base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise GoogleError(
            400, f"Invalid value at '{where}.bytesBase64Encoded': not base64."
        ) from None


def check_body(model: str, body: object) -> dict[str, Any]:
    """What a ``predictLongRunning`` body carried, or the ``GoogleError`` the API answers."""
    if not isinstance(body, dict):
        raise GoogleError(400, "Invalid JSON payload received. Expected an object.")
    for name in body:
        if name not in TOP_LEVEL:
            raise GoogleError(
                400, f'Invalid JSON payload received. Unknown name "{name}": Cannot find field.'
            )
    instances = body.get("instances")
    if not isinstance(instances, list) or len(instances) != 1 or not isinstance(instances[0], dict):
        raise GoogleError(400, "`instances` must hold exactly one instance.")
    instance: dict[str, Any] = instances[0]
    for name in instance:
        if name not in INSTANCE_FIELDS:
            raise _unsupported(name)
    prompt = instance.get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        raise GoogleError(400, "Invalid value at 'instances[0].prompt': a string is expected.")
    if not prompt and "image" not in instance:
        raise GoogleError(400, "A prompt or an image is required.")
    mime, image = None, None
    if "image" in instance:
        mime, image = _image(instance["image"], "instances[0].image")
    if "lastFrame" in instance:
        _image(instance["lastFrame"], "instances[0].lastFrame")
    parameters = body.get("parameters", {})
    if not isinstance(parameters, dict):
        raise GoogleError(400, "Invalid value at 'parameters': an object is expected.")
    for name in parameters:
        if name not in PARAMETERS:
            raise _unsupported(name)
    spec = spec_of(model)
    duration = parameters.get("durationSeconds")
    if duration is not None:
        if isinstance(duration, bool) or not isinstance(duration, int | float):
            raise GoogleError(
                400, "Invalid value at 'parameters.durationSeconds': a number is expected."
            )
        if (made := lengths_instead(duration, allowed_durations(model))) is not None:
            raise GoogleError(
                400, f"`durationSeconds` {duration:g} isn't supported by {model}: use {made}."
            )
    ratio = parameters.get("aspectRatio")
    ratios = (spec.aspect_ratios if spec and spec.aspect_ratios else None) or ["16:9", "9:16"]
    if ratio is not None and ratio not in ratios:
        raise GoogleError(400, f"`aspectRatio` {ratio!r} isn't supported: use {', '.join(ratios)}.")
    resolution = parameters.get("resolution")
    if resolution is not None:
        resolutions = (spec.resolutions if spec and spec.resolutions else None) or (
            ["720p", "1080p", "4k"] if model.startswith("veo-3") else []
        )
        if resolution not in resolutions:
            raise (
                _unsupported("resolution")
                if not resolutions
                else GoogleError(
                    400,
                    f"`resolution` {resolution!r} isn't supported: use {', '.join(resolutions)}.",
                )
            )
        if resolution in ("1080p", "4k") and duration is not None and duration != 8:
            raise GoogleError(400, f"`resolution` {resolution} needs `durationSeconds` 8.")
    person = parameters.get("personGeneration")
    if person is not None and person not in PERSON_GENERATION:
        raise GoogleError(400, f"`personGeneration` must be one of {', '.join(PERSON_GENERATION)}.")
    size = png_size(image)
    return {
        "model": model,
        "prompt": prompt or "",
        "instance_fields": sorted(instance),
        "parameters": parameters,
        "first_frame": "instances[0].image.bytesBase64Encoded" if image is not None else None,
        "first_frame_mime": mime,
        "first_frame_bytes": None if image is None else len(image),
        "aspect_ratio": ratio or (nearest_aspect(*size) if size else "16:9"),
        "duration": duration,
    }


def _operation(request: Request, prediction: Prediction) -> dict[str, Any]:
    name = f"models/{prediction.model}/operations/{prediction.id}"
    if not prediction.terminal:
        return {"name": name, "done": False}
    body: dict[str, Any] = {"name": name, "done": True}
    if prediction.status == "succeeded" and prediction.output is not None:
        uri = f"{request.base_url}veo/v1beta/files/{prediction.id}:download?alt=media"
        samples = [{"video": {"uri": uri}}]
        body["response"] = {
            "@type": RESPONSE_TYPE,
            "generateVideoResponse": {"generatedSamples": samples},
        }
    elif prediction.fate is Fate.refuse:
        body["response"] = {
            "@type": RESPONSE_TYPE,
            "generateVideoResponse": {
                "raiMediaFilteredCount": 1,
                "raiMediaFilteredReasons": [RAI_REASON],
            },
        }
    elif prediction.status in ("canceled", "aborted"):
        body["error"] = {"code": 1, "message": "Operation was cancelled (simulated)."}
    else:
        body["error"] = {
            "code": 13,
            "message": prediction.error or "Video generation failed (simulated).",
        }
    return body


def _answer(sim: Simulator, payload: Any, malformed: bool = False) -> Response:
    raw = json.dumps(payload).encode()
    if malformed and sim.roll_malformed():
        raw = raw[: max(1, len(raw) // 2)]  # cut mid-object, like a dropped proxy connection
    return Response(raw, 200, media_type="application/json")


def _found(request: Request, model: str, operation: str) -> Prediction | Response:
    sim = simulator_of(request)
    prediction = sim.get(operation)
    if (
        prediction is None
        or prediction.model != model
        or prediction.id not in _state(request).records
    ):
        name = f"models/{model}/operations/{operation}"
        return google_error(GoogleError(404, f"Operation {name} not found (or it expired)."))
    return prediction


@router.post("/v1beta/models/{target}")
async def predict_long_running(target: str, request: Request, sim: Gated) -> Response:
    """``{model}:predictLongRunning``: check the body, start the operation, name it."""
    model, _, method = target.partition(":")
    if method != "predictLongRunning" or not _MODEL.fullmatch(model):
        return google_error(GoogleError(404, f"Method {target!r} not found."))
    if not model.startswith("veo-") and spec_of(model) is None:
        return google_error(
            GoogleError(
                404,
                f"models/{model} is not found for API version v1beta, or is not supported for "
                "predictLongRunning. Call ListModels to see the list of available models and "
                "their supported methods.",
            )
        )
    try:
        body = json.loads(await request.body())
    except ValueError:
        return google_error(GoogleError(400, "Invalid JSON payload received."))
    try:
        record = check_body(model, body)
    except GoogleError as error:
        return google_error(error)
    admission = sim.admit_create()
    if not admission.allowed:
        delay = admission.headers.get("Retry-After", "1")
        info = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{delay}s"}
        return google_error(
            GoogleError(429, "Resource has been exhausted (e.g. check quota).", [info])
        )
    inputs: dict[str, Any] = {
        "prompt": record["prompt"],
        "aspect_ratio": record["aspect_ratio"],
        "request": record,
        # Veo makes 8 s when no length is asked (Veo 2: 5 s).
        "duration": float(record["duration"] or (5 if model.startswith("veo-2") else 8)),
    }
    seed = record["parameters"].get("seed")
    if isinstance(seed, int) and not isinstance(seed, bool):
        inputs["seed"] = seed
    prediction = sim.create(model, version_of(model), inputs, str(request.base_url), protocol="veo")
    name = f"models/{model}/operations/{prediction.id}"
    _state(request).records[prediction.id] = {
        "id": prediction.id,
        "protocol": "veo",
        "operation": name,
        **record,
    }
    return JSONResponse({"name": name})


@router.get("/v1beta/models/{model}/operations/{operation}")
async def get_operation(model: str, operation: str, request: Request, sim: Gated) -> Response:
    prediction = _found(request, model, operation)
    if isinstance(prediction, Response):
        return prediction
    prediction.gets += 1
    sim.counts.gets += 1
    return _answer(sim, _operation(request, prediction), malformed=True)


@router.post("/v1beta/models/{model}/operations/{target}")
async def cancel_operation(model: str, target: str, request: Request, sim: Gated) -> Response:
    operation, _, method = target.partition(":")
    if method != "cancel":
        return google_error(GoogleError(404, f"Method {method!r} not found."))
    prediction = _found(request, model, operation)
    if isinstance(prediction, Response):
        return prediction
    sim.cancel(prediction.id)
    return _answer(sim, {})


@router.get("/v1beta/files/{target}")
async def download(target: str, sim: Gated) -> Response:
    """A finished operation's video, with the key like every other call."""
    file_id, _, method = target.partition(":")
    prediction = sim.get(file_id)
    path = prediction.path if prediction is not None and prediction.output else None
    if method != "download" or path is None or not path.is_file():
        return google_error(GoogleError(404, f"File {file_id} not found."))
    return FileResponse(path, media_type="video/mp4")


@router.get("/_sim/log")
async def log(request: Request) -> dict[str, Any]:
    """What each ``predictLongRunning`` request carried, oldest first, and its status."""
    return {"operations": simulator_of(request).records_log(_state(request).records)}
